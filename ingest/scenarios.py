"""Injected fraud scenarios: each returns the labelled drafts of one episode.

Every draft carries its scenario name, which becomes the ground-truth label,
and nothing else marks it: fraudsters take their accounts, cards and devices
from the population's one id allocator, their addresses from its address
space (residential proxies, mobile carrier NAT, VPN exits, public Wi-Fi, all
of which genuine users have too), and pay in the victim's card currency,
mostly from the victim's own country; a share operates from abroad
(:data:`FRAUD_BASES`), where genuine users also live and travel.  What gives
each scenario away is behaviour only:

* ``card_testing``: one stolen card, 6-20 micro-payments (verification
  amounts and app-store price points in the card's own currency, as genuine
  micro-payments) at several digital-goods / entertainment / gift-card sites
  within half an hour, from one device the holder never used.
* ``account_takeover``: 2-5 online purchases on a victim's card within hours,
  in the victim's country, from a new device on a residential or mobile
  address, at 1.3-3x the most the victim had paid (at least ~40 USD).
* ``fraud_ring``: 4-8 new accounts (ids like any sign-up), each with a new
  card, sharing 2-3 devices and 1-2 home addresses (else mobile data or a
  VPN), passing the cards between them over 1-4 days at ordinary amounts and
  ordinary hours.
* ``device_farm``: 20-50 stolen cards of one country's users worked through
  within 6 hours by rotating devices (3-8 cards each, each device behind its
  own proxy), in the victims' currency at ordinary amounts.
* ``compromised_site`` (driven by the generator, which owns the compromise
  window at a real site): the cards paying there during the window are
  exposed (those purchases are genuine); about half are misused 1-5 days
  later elsewhere, online from a fraudster's device or in person with a
  counterfeit card (:func:`misuse`).
* ``velocity_burst``: 5-12 purchases on one card within minutes, each a
  different amount, from the holder's own device and home address (a stolen
  phone, a family member).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ingest.population import (
    APP_STORE,
    CURRENCY_OF,
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    VERIFY,
    Draft,
    Population,
    Site,
    User,
    micro_amount,
    minor_units,
)

CARD_TESTING = "card_testing"
ACCOUNT_TAKEOVER = "account_takeover"
FRAUD_RING = "fraud_ring"
DEVICE_FARM = "device_farm"
COMPROMISED_SITE = "compromised_site"
VELOCITY_BURST = "velocity_burst"

SCENARIOS = (CARD_TESTING, ACCOUNT_TAKEOVER, FRAUD_RING, DEVICE_FARM, COMPROMISED_SITE,
             VELOCITY_BURST)
#: Default share of fraudulent *transactions* per scenario.
DEFAULT_MIX = {CARD_TESTING: 0.2, ACCOUNT_TAKEOVER: 0.15, FRAUD_RING: 0.15, DEVICE_FARM: 0.15,
               COMPROMISED_SITE: 0.2, VELOCITY_BURST: 0.15}
COMPROMISE_SIZE = (10, 30)  # transactions at the site during its compromise window
MISUSE_SHARE = 0.5  # share of exposures misused later
MISUSES = (1, 2)  # fraudulent transactions per misused exposure
#: Mean number of fraudulent transactions per episode (used to pace episodes).
MEAN_SIZE = {CARD_TESTING: 13.0, ACCOUNT_TAKEOVER: 3.5, FRAUD_RING: 30.0, DEVICE_FARM: 35.0,
             COMPROMISED_SITE: sum(COMPROMISE_SIZE) / 2 * MISUSE_SHARE * sum(MISUSES) / 2,
             VELOCITY_BURST: 8.5}
#: Where fraudsters operate from when not from the victim's country; genuine users live
#: in and travel to every one of them.
FRAUD_BASES = ("RO", "NG", "UA", "VN", "ID", "BR", "TR", "TH")
ABROAD_SHARE = 0.2
ATO_FLOOR_USD = 40.0
COUNTERFEIT_SHARE = 0.3  # of compromised-card misuse: a cloned card, in person

Episode = Callable[[Population, random.Random, int, dict[str, float]], list[Draft]]


def _operating_country(rng: random.Random, home: str) -> str:
    return rng.choice(FRAUD_BASES) if rng.random() < ABROAD_SHARE else home


def _proxy_ip(pop: Population, rng: random.Random, country: str) -> str:
    """Where a fraudster seems to connect from: a residential proxy, mobile data, a VPN
    exit or public Wi-Fi; every one an address genuine users use too."""
    r = rng.random()
    if r < 0.45:
        return pop.net.residential(country)
    if r < 0.7:
        return pop.net.mobile(country)
    if r < 0.9:
        return pop.net.vpn()
    return pop.net.public_wifi(country)


def card_testing(pop: Population, rng: random.Random, t0: int,
                 _max_usd: dict[str, float]) -> list[Draft]:
    """A stolen card probed with a burst of micro-payments across online sites."""
    victim = pop.random_user()
    card, currency = pop.card_of(victim, t0), victim.currency
    country = _operating_country(rng, victim.country)
    device, ip = pop.ids.device(), _proxy_ip(pop, rng, country)
    drafts, t = [], t0
    for _ in range(rng.randint(6, 20)):
        t += 2_000 + round(rng.expovariate(1 / 30_000))
        site = pop.random_online_site(("digital_goods", "entertainment", "gift_cards"))
        amount = micro_amount(rng, currency, VERIFY if rng.random() < 0.7 else APP_STORE)
        drafts.append(Draft(t, victim.user_id, card, site, country, device, ip, amount,
                            currency, CARD_TESTING))
    return drafts


def account_takeover(pop: Population, rng: random.Random, t0: int,
                     max_usd: dict[str, float]) -> list[Draft]:
    """A taken-over account: the victim's country, a new device, amounts above its history."""
    victim = pop.random_user()
    card, currency = pop.card_of(victim, t0), victim.currency
    device = pop.ids.device()
    ip = (pop.net.residential(victim.country) if rng.random() < 0.6
          else pop.net.mobile(victim.country))
    reference = max(max_usd.get(victim.user_id, 0.0), ATO_FLOOR_USD)
    drafts, t = [], t0
    for _ in range(rng.randint(2, 5)):
        t += rng.randint(2 * MINUTE_MS, 40 * MINUTE_MS)
        site = pop.random_online_site(("electronics", "gift_cards", "travel", "fashion"))
        amount = minor_units(reference * rng.uniform(1.3, 3.0), currency)
        drafts.append(Draft(t, victim.user_id, card, site, victim.country, device, ip, amount,
                            currency, ACCOUNT_TAKEOVER))
    return drafts


def fraud_ring(pop: Population, rng: random.Random, t0: int,
               _max_usd: dict[str, float]) -> list[Draft]:
    """New accounts sharing devices and addresses and passing their cards around for days."""
    country = pop.random_user().country  # rings blend into a country's population
    currency = CURRENCY_OF[country]
    members = [pop.ids.user() for _ in range(rng.randint(4, 8))]
    cards = [pop.ids.card() for _ in members]
    spends = [rng.lognormvariate(0.0, 0.35) for _ in members]
    devices = [pop.ids.device() for _ in range(rng.randint(2, 3))]
    homes = [pop.net.residential(country) for _ in range(rng.randint(1, 2))]
    span = rng.randint(1, 4) * DAY_MS
    times = sorted(pop.active_time(t0, span) for _ in range(rng.randint(15, 45)))
    drafts = []
    for i, t in enumerate(times):
        # The first pass uses each member's own card; afterwards cards change hands.
        member = i if i < len(members) else rng.randrange(len(members))
        card = cards[i] if i < len(cards) else rng.choice(cards)
        site = pop.random_online_site(("electronics", "gift_cards", "fashion", "entertainment"))
        amount = minor_units(pop.purchase_usd(site, spends[member]), currency)
        drafts.append(Draft(t, members[member], card, site, country, rng.choice(devices),
                            _ring_ip(pop, rng, country, homes), amount, currency, FRAUD_RING))
    return drafts


def _ring_ip(pop: Population, rng: random.Random, country: str, homes: list[str]) -> str:
    """A ring member at one of the ring's addresses, on mobile data, or behind a VPN."""
    r = rng.random()
    if r < 0.45:
        return rng.choice(homes)
    return pop.net.mobile(country) if r < 0.85 else pop.net.vpn()


def device_farm(pop: Population, rng: random.Random, t0: int,
                _max_usd: dict[str, float]) -> list[Draft]:
    """A leaked list of one country's cards worked through by rotating devices."""
    country = pop.random_user().country
    wanted = rng.randint(20, 50)
    people = pop.users_in(country)
    victims = rng.sample(people, min(wanted, len(people)))
    while len(victims) < wanted:  # a small country's list is topped up from elsewhere
        victims.append(pop.random_user())
    drafts, t, i = [], t0, 0
    while i < len(victims):
        chunk = victims[i:i + rng.randint(3, 8)]
        i += len(chunk)
        device, ip = pop.ids.device(), _proxy_ip(pop, rng, country)
        for victim in chunk:
            t += rng.randint(MINUTE_MS, 7 * MINUTE_MS)
            drafts.append(_farm_purchase(pop, t, victim, device, ip))
    return drafts


def _farm_purchase(pop: Population, t: int, victim: User, device: str, ip: str) -> Draft:
    site = pop.random_online_site(("gift_cards", "electronics", "digital_goods"))
    amount = minor_units(pop.purchase_usd(site, victim.spend), victim.currency)
    return Draft(t, victim.user_id, pop.card_of(victim, t), site, victim.country, device, ip,
                 amount, victim.currency, DEVICE_FARM)


def velocity_burst(pop: Population, rng: random.Random, t0: int,
                   _max_usd: dict[str, float]) -> list[Draft]:
    """Many purchases on one card within minutes, each with a different amount."""
    victim = pop.random_user()
    card, currency = pop.card_of(victim, t0), victim.currency
    sites = [pop.random_online_site() for _ in range(rng.randint(2, 4))]
    device = rng.choice(victim.devices)
    drafts, t = [], t0
    for _ in range(rng.randint(5, 12)):
        t += rng.randint(15_000, 75_000)
        drafts.append(Draft(t, victim.user_id, card, rng.choice(sites), victim.country, device,
                            victim.home.ip, minor_units(rng.uniform(20, 300), currency),
                            currency, VELOCITY_BURST))
    return drafts


def misuse(pop: Population, rng: random.Random, t0: int, card_id: str,
           exposed_at: str) -> list[Draft]:
    """A card exposed at site ``exposed_at`` at ``t0``, used 1-5 days later elsewhere:
    online from a fraudster's device, or in person with a counterfeit."""
    holder = pop.holder(card_id)
    if holder is None:  # replaced within the minutes since (a burst's old card)
        return []
    country = _operating_country(rng, holder.country)
    t = pop.active_time(t0 + DAY_MS, 4 * DAY_MS)
    counterfeit = rng.random() < COUNTERFEIT_SHARE
    device = ip = None
    if not counterfeit:
        device, ip = pop.ids.device(), _proxy_ip(pop, rng, country)
    drafts = []
    for _ in range(rng.randint(*MISUSES)):
        site = _misuse_site(pop, country, counterfeit, exposed_at)
        currency = CURRENCY_OF[country] if counterfeit else holder.currency
        amount = minor_units(pop.purchase_usd(site, holder.spend) * rng.uniform(1.0, 2.0),
                             currency)
        drafts.append(Draft(t, holder.user_id, card_id, site, country, device, ip, amount,
                            currency, COMPROMISED_SITE))
        t += rng.randint(5 * MINUTE_MS, 3 * HOUR_MS)
    return drafts


def _misuse_site(pop: Population, country: str, counterfeit: bool, exposed_at: str) -> Site:
    """A site other than the compromised one: in ``country`` for a counterfeit card,
    else online."""
    while True:
        site = (pop.random_local_site(country) if counterfeit else
                pop.random_online_site(("electronics", "gift_cards", "travel", "fashion")))
        if site.site_id != exposed_at:  # every country has 3+ sites, so this ends
            return site


EPISODES: dict[str, Episode] = {
    CARD_TESTING: card_testing, ACCOUNT_TAKEOVER: account_takeover, FRAUD_RING: fraud_ring,
    DEVICE_FARM: device_farm, VELOCITY_BURST: velocity_burst,
}
