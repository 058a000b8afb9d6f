"""Injected fraud scenarios: each returns the labelled drafts of one episode.

Every draft carries its scenario name, which becomes the ground-truth label.
Fraudster-controlled ids use their own prefixes (``dx…`` devices, ``ur…`` ring
users, ``cr…`` ring cards) so tests can find each scenario's defining pattern.
The compromised-site scenario is stateful (a window at a real site) and lives
in the generator; its later misuse of the exposed cards is :func:`misuse`.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ingest.population import CURRENCY_OF, FRAUD_COUNTRIES, Draft, Population

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
#: Mean number of fraudulent transactions per episode (used to pace episodes).
MEAN_SIZE = {CARD_TESTING: 13.0, ACCOUNT_TAKEOVER: 3.5, FRAUD_RING: 30.0, DEVICE_FARM: 37.5,
             COMPROMISED_SITE: 20 * 0.6, VELOCITY_BURST: 8.5}
COMPROMISE_SIZE = (10, 30)  # transactions at the site during its compromise window
MISUSE_SHARE = 0.6  # share of exposed cards misused later
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

Episode = Callable[[Population, random.Random, int, int, dict[str, float]], list[Draft]]


def _fraud_ip(rng: random.Random) -> str:
    return f"203.0.{rng.randrange(113, 116)}.{rng.randrange(1, 255)}"


def card_testing(pop: Population, rng: random.Random, t0: int, k: int,
                 _max_usd: dict[str, float]) -> list[Draft]:
    """A stolen card probed with a burst of tiny amounts across many online sites."""
    victim = pop.random_user()
    card = rng.choice(victim.cards)
    device, ip, country = f"dxct{k:06d}", _fraud_ip(rng), rng.choice(FRAUD_COUNTRIES)
    drafts, t = [], t0
    for _ in range(rng.randint(6, 20)):
        t += 2_000 + round(rng.expovariate(1 / 30_000))
        site = pop.random_online_site(("digital_goods", "entertainment", "gift_cards"))
        drafts.append(Draft(t, victim.user_id, card, site, country, device, ip,
                            round(rng.uniform(0.5, 2.5), 2), "USD", CARD_TESTING))
    return drafts


def account_takeover(pop: Population, rng: random.Random, t0: int, k: int,
                     max_usd: dict[str, float]) -> list[Draft]:
    """A taken-over account: new device, foreign country, amounts far above its history."""
    victim = pop.random_user()
    card = rng.choice(victim.cards)
    country = rng.choice([c for c in FRAUD_COUNTRIES if c != victim.country])
    device, ip = f"dxato{k:06d}", _fraud_ip(rng)
    ceiling = max(max_usd.get(victim.user_id, 0.0), 150.0)
    drafts, t = [], t0
    for _ in range(rng.randint(2, 5)):
        t += rng.randint(2 * MINUTE, 40 * MINUTE)
        site = pop.random_online_site(("electronics", "gift_cards", "travel"))
        drafts.append(Draft(t, victim.user_id, card, site, country, device, ip,
                            ceiling * rng.uniform(2.5, 6.0), CURRENCY_OF[victim.country],
                            ACCOUNT_TAKEOVER))
    return drafts


def fraud_ring(pop: Population, rng: random.Random, t0: int, k: int,
               _max_usd: dict[str, float]) -> list[Draft]:
    """Synthetic users sharing devices and IPs and passing their cards around for days."""
    members = [f"ur{k:05d}{j}" for j in range(rng.randint(4, 8))]
    cards = [f"cr{k:05d}{j}" for j in range(len(members))]
    devices = [f"dxr{k:05d}{j}" for j in range(rng.randint(2, 3))]
    ips = [_fraud_ip(rng) for _ in range(rng.randint(1, 2))]
    country = rng.choice(list(pop.by_country))
    span = rng.randint(1, 4) * DAY
    times = sorted(t0 + rng.randrange(span) for _ in range(rng.randint(15, 45)))
    drafts = []
    for i, t in enumerate(times):
        # The first pass uses each member's own card; afterwards cards change hands.
        card = cards[i] if i < len(cards) else rng.choice(cards)
        user = members[i] if i < len(members) else rng.choice(members)
        site = pop.random_online_site(("electronics", "gift_cards", "fashion"))
        drafts.append(Draft(t, user, card, site, country, rng.choice(devices), rng.choice(ips),
                            rng.uniform(80, 600), CURRENCY_OF[country], FRAUD_RING))
    return drafts


def device_farm(pop: Population, rng: random.Random, t0: int, k: int,
                _max_usd: dict[str, float]) -> list[Draft]:
    """One device working through many stolen cards of different users within hours."""
    device, country = f"dxfarm{k:05d}", rng.choice(FRAUD_COUNTRIES)
    proxies = [_fraud_ip(rng) for _ in range(3)]
    victims = {pop.random_user().user_id: None for _ in range(rng.randint(20, 50))}
    drafts = []
    for user_id in victims:
        user = pop.users[int(user_id[1:])]
        t = t0 + rng.randrange(6 * HOUR)
        site = pop.random_online_site(("gift_cards", "electronics", "digital_goods"))
        drafts.append(Draft(t, user.user_id, rng.choice(user.cards), site, country, device,
                            rng.choice(proxies), rng.uniform(20, 200), CURRENCY_OF[user.country],
                            DEVICE_FARM))
    return sorted(drafts, key=lambda d: d.event_ms)


def velocity_burst(pop: Population, rng: random.Random, t0: int, k: int,
                   _max_usd: dict[str, float]) -> list[Draft]:
    """Many purchases on one card within minutes, each with a different amount."""
    victim = pop.random_user()
    card = rng.choice(victim.cards)
    sites = [pop.random_online_site() for _ in range(rng.randint(2, 4))]
    device = rng.choice(victim.devices)
    drafts, t = [], t0
    for _ in range(rng.randint(5, 12)):
        t += rng.randint(15_000, 75_000)
        drafts.append(Draft(t, victim.user_id, card, rng.choice(sites), victim.country, device,
                            victim.ip, rng.uniform(20, 300), CURRENCY_OF[victim.country],
                            VELOCITY_BURST))
    return drafts


def misuse(pop: Population, rng: random.Random, t0: int, k: int, card_id: str) -> Draft:
    """A card exposed at a compromised site, used days later by the fraudsters."""
    user = pop.card_owner[card_id.rstrip("r")]  # a replacement card has its holder
    site = pop.random_online_site(("electronics", "gift_cards", "travel"))
    return Draft(t0 + rng.randint(1 * DAY, 5 * DAY), user.user_id, card_id, site,
                 rng.choice(FRAUD_COUNTRIES), f"dxcs{k:06d}", _fraud_ip(rng),
                 rng.uniform(100, 800), CURRENCY_OF[user.country], COMPROMISED_SITE)


EPISODES: dict[str, Episode] = {
    CARD_TESTING: card_testing, ACCOUNT_TAKEOVER: account_takeover, FRAUD_RING: fraud_ring,
    DEVICE_FARM: device_farm, VELOCITY_BURST: velocity_burst,
}
