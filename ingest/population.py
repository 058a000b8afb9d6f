"""A seeded card population and its genuine traffic, for the generator.

The population is built so that nothing about an id, an address or a country
tells a genuine user from a fraudster (the scenarios draw from the same pools):

* **Ids** come from one allocator, :class:`Ids`: users ``u0000123``, cards
  ``c00000123``, devices ``d00000123``.  New sign-ups, reissued cards, new
  phones and fraudsters' accounts and devices all take the next number.
* **Addresses** come from one :class:`AddressSpace`: per country, residential
  /16 blocks (one address per household or office), the mobile carriers'
  carrier-grade NAT pools (a handful of addresses shared by hundreds of users),
  public Wi-Fi (cafés, stations, hotels, kiosks); and worldwide VPN / hosting
  exits that privacy-minded users take too.
* **Households** of 2-5 users share a home address and a family device; some
  partners hold the same card (a second holder).  Some users work in an office
  that shares an address and sometimes a PC; kiosks in each country are used by
  anyone passing by.
* **Traffic** follows a daily and weekly rhythm (UTC).  Users travel (trips of
  days to any country, fraud's favourite bases included) and buy in person in
  the local currency and online in their card's currency from there.  There are
  micro-payments in local currency (card verification at 0.01-1.00, app-store
  price points, transit fares), short bursts (a shopping day, several tickets
  within minutes), occasional large purchases far above a user's history, new
  sign-ups, phone changes, and card reissues (expiry, loss) at random times.

Everything is drawn from one ``random.Random``, so a seed fixes it all.  Users
are mutable (cards are reissued, phones replaced, trips taken); the other
records (sites, households, workplaces, drafts, reissues) are frozen values.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from dataclasses import dataclass
from typing import NamedTuple

from ingest.iso import CURRENCY_EXPONENT, PER_USD

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
NEVER_MS = 2**62

#: Home countries of the population, with weights (the last few are small communities).
COUNTRY_WEIGHTS = {"US": 30, "GB": 12, "DE": 10, "FR": 8, "CA": 6, "ES": 5, "IT": 5, "NL": 4,
                   "BR": 4, "MX": 3, "IN": 3, "JP": 3, "AU": 3, "SE": 2, "PL": 2, "RO": 1,
                   "NG": 1, "UA": 1, "VN": 1, "ID": 1, "TH": 1, "TR": 1}
#: Where users travel, with weights: every home country and a few holiday-only ones.
TRAVEL_WEIGHTS = {"US": 8, "GB": 5, "DE": 4, "FR": 8, "CA": 3, "ES": 8, "IT": 7, "NL": 3,
                  "BR": 3, "MX": 5, "IN": 2, "JP": 3, "AU": 2, "SE": 1, "PL": 2, "RO": 2,
                  "NG": 2, "UA": 1, "VN": 3, "ID": 3, "TH": 5, "TR": 5, "PT": 4, "GR": 4,
                  "AT": 2}
CURRENCY_OF = {"US": "USD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "CA": "CAD", "ES": "EUR",
               "IT": "EUR", "NL": "EUR", "BR": "BRL", "MX": "MXN", "IN": "INR", "JP": "JPY",
               "AU": "AUD", "SE": "SEK", "PL": "PLN", "RO": "RON", "NG": "NGN", "UA": "UAH",
               "VN": "VND", "ID": "IDR", "TH": "THB", "TR": "TRY", "PT": "EUR", "GR": "EUR",
               "AT": "EUR"}
#: Minor units of each currency per US dollar.
MINOR_PER_USD = {c: rate * 10 ** CURRENCY_EXPONENT[c] for c, rate in PER_USD.items()}

#: Merchant categories: (name, log-mean USD amount, online share of sites).
CATEGORIES = (
    ("grocery", 3.3, 0.1), ("restaurants", 3.2, 0.05), ("fuel", 3.7, 0.0),
    ("fashion", 4.0, 0.5), ("electronics", 5.0, 0.6), ("travel", 5.6, 0.7),
    ("digital_goods", 2.6, 1.0), ("pharmacy", 3.1, 0.2), ("entertainment", 3.4, 0.5),
    ("gift_cards", 4.3, 0.8), ("transit", 1.2, 0.1),
)
#: Relative traffic by hour of day (UTC) and by weekday (Monday first).
HOUR_FACTOR = (0.15, 0.1, 0.08, 0.08, 0.1, 0.2, 0.4, 0.6, 0.75, 0.85, 0.9, 0.95,
               1.0, 0.95, 0.9, 0.9, 0.95, 1.0, 1.0, 0.95, 0.85, 0.7, 0.5, 0.3)
DAY_FACTOR = (0.9, 0.92, 0.95, 0.97, 1.0, 0.95, 0.8)

# Shares of genuine purchases (each a probability per purchase).
ONLINE_SHARE = 0.45
MICRO_SHARE = 0.03  # verification, app store, transit
LARGE_SHARE = 0.004  # far above the user's usual (a laptop, a flight)
BURST_SHARE = 0.004  # followed by more purchases within minutes
TRIP_START_SHARE = 0.004  # about 3% of purchases happen on a trip
PHONE_CHANGE_SHARE = 0.002  # of online purchases: the first on a new phone
SIGNUP_SHARE_PER_DAY = 0.004  # new users per day, as a share of the initial population
# Where an online purchase at home is made from (shares of those purchases).
VPN_USE_SHARE = 0.6  # of a VPN user's purchases
KIOSK_USE_SHARE = 0.01
MOBILE_DATA_SHARE = 0.3  # behind the carrier's NAT
PUBLIC_WIFI_SHARE = 0.05
AT_WORK_SHARE = 0.15  # of those with a workplace
OFFICE_PC_SHARE = 0.4  # of purchases at work, where the office has a shared PC
FAMILY_DEVICE_SHARE = 0.25  # of purchases at home, where the household has a shared device
# Shares of the population.
HOUSEHOLD_SHARE = 0.3  # of households with 2-5 members
SECOND_HOLDER_SHARE = 0.4  # of multi-user households where a partner holds a card too
OFFICE_SHARE = 0.2  # of users who sometimes buy from work
VPN_SHARE = 0.06  # of users who shop through a VPN
REISSUE_MEAN_DAYS = 365  # a card is replaced (expiry, loss, damage) about yearly

#: Micro-payment kinds and their amounts (card testers use the first two as well).
VERIFY, APP_STORE, TRANSIT = "verify", "app_store", "transit"
APP_PRICES_USD = (0.49, 0.99, 1.99, 2.99, 4.99)
TRANSIT_FARES_USD = (1.25, 1.75, 2.5, 2.75, 3.0)
#: First octets of the public address blocks (no private, shared or documentation ranges).
PUBLIC_FIRST_OCTETS = tuple(o for o in range(1, 224)
                            if o not in (10, 100, 127, 169, 172, 192, 198, 203))


@dataclass(frozen=True)
class Site:
    site_id: str
    category: str
    log_mean: float
    country: str
    online: bool


@dataclass(frozen=True)
class Household:
    """Users who live together: one home address and the family's shared devices."""

    ip: str
    devices: tuple[str, ...]


@dataclass(frozen=True)
class Workplace:
    """An office: one address and maybe a shared PC."""

    ip: str
    devices: tuple[str, ...]


@dataclass(slots=True)
class User:
    """A genuine account holder.  Mutable: ``cards`` and ``devices`` change (reissue, new
    phone; ``devices[0]`` is the phone) and ``trip_*`` say where the user is travelling."""

    user_id: str
    country: str
    cards: list[str]
    devices: list[str]
    home: Household
    carrier: tuple[str, ...]  # the mobile carrier's NAT addresses
    spend: float  # multiplier on the category's typical amount
    local_sites: tuple[int, ...]
    online_sites: tuple[int, ...]
    vpn: bool
    workplace: Workplace | None = None
    trip_country: str = ""
    trip_until_ms: int = 0

    @property
    def currency(self) -> str:
        """The currency of the user's cards."""
        return CURRENCY_OF[self.country]


class Draft(NamedTuple):
    """One purchase before it gets its transaction id; ``scenario`` is None when genuine.

    A named tuple rather than a dataclass: the generator makes one per transaction.
    """

    event_ms: int
    user_id: str
    card_id: str
    site: Site
    country: str
    device_id: str | None
    ip_address: str | None
    amount_minor: int
    currency: str
    scenario: str | None = None

    @property
    def card_present(self) -> bool:
        return self.device_id is None

    @property
    def usd(self) -> float:
        return self.amount_minor / MINOR_PER_USD[self.currency]


@dataclass(frozen=True)
class Reissue:
    """A card replaced by ``new`` from ``due_ms`` on; ``cause`` is "fraud" or "renewal"."""

    old: str
    new: str
    due_ms: int
    cause: str


@dataclass(frozen=True)
class PhoneChange:
    user_id: str
    old: str
    new: str
    at_ms: int


def minor_units(usd: float, currency: str) -> int:
    """``usd`` in ``currency``'s minor units (at least one)."""
    return max(1, round(usd * MINOR_PER_USD[currency]))


def micro_amount(rng: random.Random, currency: str, kind: str) -> int:
    """A micro-payment in minor units of ``currency``: a card verification (the smallest
    unit, one whole unit, or a few cents), an app-store price point, or a transit fare.

    Verifications are never 0: SPEC §3.1 allows a zero amount, but the decoder
    (``ingest.transaction``) rejects it today, so a 0 would only feed the DLQ.
    """
    if kind == VERIFY:
        unit = 10 ** CURRENCY_EXPONENT[currency]
        r = rng.random()
        if r < 0.4:
            return 1
        return unit if r < 0.7 else rng.randint(1, max(99, unit - 1))
    prices = APP_PRICES_USD if kind == APP_STORE else TRANSIT_FARES_USD
    return minor_units(prices[int(rng.random() * len(prices))], currency)


def weighted(rng: random.Random, table: dict[str, int]) -> str:
    return rng.choices(list(table), list(table.values()))[0]


class Ids:
    """The one allocator of user, card and device ids, all in one format each: genuine
    sign-ups, reissued cards, new phones and fraudsters' accounts take the next number."""

    def __init__(self, prefix: str = "") -> None:
        """``prefix``: put before every id, so two populations never share one."""
        self.prefix = prefix
        self._users = itertools.count()
        self._cards = itertools.count()
        self._devices = itertools.count()

    def user(self) -> str:
        return f"{self.prefix}u{next(self._users):07d}"

    def card(self) -> str:
        return f"{self.prefix}c{next(self._cards):08d}"

    def device(self) -> str:
        return f"{self.prefix}d{next(self._devices):08d}"


class AddressSpace:
    """Public IPv4 addresses per country (residential, mobile NAT, public Wi-Fi) and the
    VPN / hosting exits; genuine users and fraudsters draw from the same pools."""

    def __init__(self, rng: random.Random, countries: dict[str, int]) -> None:
        self.rng = rng
        self._taken: set[tuple[int, int]] = set()
        self.residential_blocks = {c: [self._block() for _ in range(2 + w // 4)]
                                   for c, w in countries.items()}
        self.carriers = {c: [self._pool(2 + w // 6) for _ in range(2)]
                         for c, w in countries.items()}
        self.wifi = {c: [self.residential(c) for _ in range(3 + w // 10)]
                     for c, w in countries.items()}
        self.vpn_exits = [ip for _ in range(4) for ip in self._pool(64)]

    def _block(self) -> tuple[int, int]:
        while True:
            block = (self.rng.choice(PUBLIC_FIRST_OCTETS), self.rng.randrange(256))
            if block not in self._taken:
                self._taken.add(block)
                return block

    def _pool(self, size: int) -> tuple[str, ...]:
        """``size`` addresses of one /24 (a carrier's NAT or a hosting provider's range)."""
        a, b = self._block()
        c = self.rng.randrange(256)
        return tuple(f"{a}.{b}.{c}.{h}" for h in self.rng.sample(range(1, 255), size))

    def residential(self, country: str) -> str:
        blocks = self.residential_blocks[country]
        a, b = blocks[int(self.rng.random() * len(blocks))]
        return f"{a}.{b}.{self.rng.randrange(256)}.{self.rng.randrange(1, 255)}"

    def mobile(self, country: str) -> str:
        pools = self.carriers[country]
        pool = pools[int(self.rng.random() * len(pools))]
        return pool[int(self.rng.random() * len(pool))]

    def public_wifi(self, country: str) -> str:
        pool = self.wifi[country]
        return pool[int(self.rng.random() * len(pool))]

    def vpn(self) -> str:
        return self.vpn_exits[int(self.rng.random() * len(self.vpn_exits))]


class Population:
    """Users, cards, devices, addresses and sites drawn from ``rng``; their genuine traffic
    (:meth:`next_purchase`, :meth:`follow_ups`) and what the scenarios borrow from it."""

    def __init__(self, rng: random.Random, users: int, sites: int, start_ms: int,
                 daily_rate: float = 1.2, id_prefix: str = "") -> None:
        self.rng = rng
        self.ids = Ids(id_prefix)
        countries = dict(COUNTRY_WEIGHTS) | {c: 1 for c in TRAVEL_WEIGHTS
                                             if c not in COUNTRY_WEIGHTS}
        self.net = AddressSpace(rng, countries)
        self.sites: list[Site] = []
        self.by_country: dict[str, list[int]] = {}  # card-present sites
        self._draw_sites(sites, countries)
        self.online_sites = [i for i, s in enumerate(self.sites) if s.online]
        self.kiosks = {c: [(self.ids.device(), self.net.public_wifi(c)) for _ in range(2 + w // 10)]
                       for c, w in countries.items()}
        self.users: list[User] = []
        self.by_id: dict[str, User] = {}
        self.by_home: dict[str, list[User]] = {}
        self.card_holders: dict[str, list[User]] = {}
        self.reissue_at: dict[str, int] = {}
        self._fraud_due: set[str] = set()
        self.reissues: list[Reissue] = []
        self.phone_changes: list[PhoneChange] = []
        self.cumulative: list[float] = []
        self.now_ms = start_ms
        self._populate(users)
        self._assign_workplaces()
        self.mean_gap_ms = DAY_MS / (daily_rate * users)
        self.signup_probability = SIGNUP_SHARE_PER_DAY / daily_rate
        self._online_by_categories: dict[tuple[str, ...], list[int]] = {}
        self._local_by_category: dict[tuple[str, str], list[int]] = {}

    # -- construction -------------------------------------------------------------------

    def _draw_sites(self, count: int, countries: dict[str, int]) -> None:
        rng = self.rng
        for _ in range(count):
            name, log_mean, online_share = rng.choice(CATEGORIES)
            self._add_site(name, log_mean, weighted(rng, COUNTRY_WEIGHTS),
                           rng.random() < online_share)
        basics = [c for c in CATEGORIES if c[0] in ("grocery", "restaurants", "transit")]
        for country in countries:  # everywhere has somewhere to eat, shop and ride
            have = {self.sites[i].category for i in self.by_country.get(country, ())}
            for name, log_mean, _ in basics:
                if name not in have:
                    self._add_site(name, log_mean, country, False)

    def _add_site(self, name: str, log_mean: float, country: str, online: bool) -> None:
        self.sites.append(Site(f"s{len(self.sites):05d}", name, log_mean, country, online))
        if not online:
            self.by_country.setdefault(country, []).append(len(self.sites) - 1)

    def _populate(self, count: int) -> None:
        """Households of 1-5 users; a partner may hold a card too (a second holder)."""
        rng = self.rng
        while len(self.users) < count:
            country = weighted(rng, COUNTRY_WEIGHTS)
            size = rng.randint(2, 5) if rng.random() < HOUSEHOLD_SHARE else 1
            size = min(size, count - len(self.users))
            shared = (self.ids.device(),) if size > 1 else ()
            home = Household(self.net.residential(country), shared)
            members = [self._new_user(country, home) for _ in range(size)]
            if size > 1 and rng.random() < SECOND_HOLDER_SHARE:
                card = members[0].cards[0]
                members[1].cards.append(card)
                self.card_holders[card].append(members[1])

    def _new_user(self, country: str, home: Household) -> User:
        rng = self.rng
        local = self.by_country[country]
        user = User(
            user_id=self.ids.user(), country=country,
            cards=[self._new_card(self.now_ms) for _ in range(rng.choice((1, 1, 1, 2, 2, 3)))],
            devices=[self.ids.device() for _ in range(rng.choice((1, 1, 2)))], home=home,
            carrier=self.net.carriers[country][rng.randrange(2)],
            spend=rng.lognormvariate(0.0, 0.35),
            local_sites=tuple(rng.sample(local, min(len(local), rng.randint(3, 8)))),
            online_sites=tuple(rng.sample(self.online_sites,
                                          min(len(self.online_sites), rng.randint(2, 6)))),
            vpn=rng.random() < VPN_SHARE)
        for card in user.cards:
            self.card_holders[card] = [user]
        self.users.append(user)
        self.by_id[user.user_id] = user
        self.by_home.setdefault(country, []).append(user)
        activity = rng.lognormvariate(0.0, 0.8)
        self.cumulative.append(activity + (self.cumulative[-1] if self.cumulative else 0.0))
        return user

    def _new_card(self, now_ms: int) -> str:
        card = self.ids.card()
        self.reissue_at[card] = now_ms + round(self.rng.expovariate(1.0) * REISSUE_MEAN_DAYS
                                               * DAY_MS)
        return card

    def _assign_workplaces(self) -> None:
        """Offices of 3-15 colleagues from one country; half have a shared PC."""
        rng = self.rng
        for country, people in self.by_home.items():
            staff = [u for u in people if rng.random() < OFFICE_SHARE]
            while staff:
                size = rng.randint(3, 15)
                devices = (self.ids.device(),) if rng.random() < 0.5 else ()
                office = Workplace(self.net.residential(country), devices)
                for user in staff[:size]:
                    user.workplace = office
                staff = staff[size:]

    # -- genuine traffic ----------------------------------------------------------------

    def next_purchase(self) -> Draft:
        """The next genuine purchase in event time (daily/weekly rhythm by thinning)."""
        rng = self.rng
        now = self._advance()
        if rng.random() < self.signup_probability:
            user = self._sign_up()
        else:
            user = self.users[bisect.bisect(self.cumulative, rng.random() * self.cumulative[-1])]
        card = self.card_of(user, now)
        where = self._whereabouts(user, now)
        r = rng.random()
        if r < MICRO_SHARE:
            return self._micro(user, card, where, now)
        device: str | None
        ip: str | None
        if r < MICRO_SHARE + ONLINE_SHARE:
            site = self.sites[user.online_sites[int(rng.random() * len(user.online_sites))]]
            device, ip = self._online_context(user, where, now)
            currency = user.currency
        else:
            site = self._local_site(user, where)
            device = ip = None
            currency = CURRENCY_OF[site.country]
        usd = self.purchase_usd(site, user.spend)
        if rng.random() < LARGE_SHARE:
            usd *= rng.uniform(4.0, 10.0)
        return Draft(now, user.user_id, card, site, where, device, ip,
                     minor_units(usd, currency), currency)

    def follow_ups(self, draft: Draft) -> list[Draft]:
        """Rarely, more purchases within minutes after ``draft`` (genuine bursts): a
        shopping day in person, or several tickets at one online site."""
        rng = self.rng
        if draft.scenario is not None or rng.random() >= BURST_SHARE:
            return []
        user, t, more = self.by_id[draft.user_id], draft.event_ms, []
        for _ in range(rng.randint(2, 4)):
            if draft.card_present:
                t += rng.randint(MINUTE_MS, 8 * MINUTE_MS)
                site = self._local_site(user, draft.country)
                usd = self.purchase_usd(site, user.spend)
                more.append(draft._replace(event_ms=t, site=site, amount_minor=minor_units(
                    usd, CURRENCY_OF[site.country]), currency=CURRENCY_OF[site.country]))
            else:
                t += rng.randint(20_000, 3 * MINUTE_MS)
                amount = max(1, round(draft.amount_minor * rng.uniform(0.7, 1.3)))
                more.append(draft._replace(event_ms=t, amount_minor=amount))
        return more

    def _advance(self) -> int:
        rng = self.rng
        while True:
            self.now_ms += max(1, round(rng.expovariate(1.0) * self.mean_gap_ms))
            hour = self.now_ms // HOUR_MS
            if rng.random() < HOUR_FACTOR[hour % 24] * DAY_FACTOR[(hour // 24 + 3) % 7]:
                return self.now_ms

    def _sign_up(self) -> User:
        """A new account: a new user (ids from the shared counters) in a new home."""
        country = weighted(self.rng, COUNTRY_WEIGHTS)
        return self._new_user(country, Household(self.net.residential(country), ()))

    def _whereabouts(self, user: User, now_ms: int) -> str:
        """The country the user is in: home, or a trip's destination."""
        if user.trip_until_ms > now_ms:
            return user.trip_country
        if self.rng.random() < TRIP_START_SHARE:
            destination = weighted(self.rng, TRAVEL_WEIGHTS)
            if destination != user.country:
                user.trip_country = destination
                user.trip_until_ms = now_ms + self.rng.randint(2, 12) * DAY_MS
                return destination
        return user.country

    def _local_site(self, user: User, where: str) -> Site:
        pool = user.local_sites if where == user.country else self.by_country[where]
        return self.sites[pool[int(self.rng.random() * len(pool))]]

    def _online_context(self, user: User, where: str, now_ms: int) -> tuple[str, str]:
        """(device, ip) of an online purchase: on a trip (local mobile data or Wi-Fi),
        through a VPN, at a kiosk, on mobile data, at work, on public Wi-Fi, or at home."""
        rng, net = self.rng, self.net
        if rng.random() < PHONE_CHANGE_SHARE:
            self._new_phone(user, now_ms)
        personal = user.devices[int(rng.random() * len(user.devices))]
        if where != user.country:
            abroad_ip = net.mobile(where) if rng.random() < 0.5 else net.public_wifi(where)
            return user.devices[0], abroad_ip
        if user.vpn and rng.random() < VPN_USE_SHARE:
            return personal, net.vpn()
        r = rng.random()
        if r < KIOSK_USE_SHARE:
            kiosks = self.kiosks[where]
            return kiosks[int(rng.random() * len(kiosks))]
        r -= KIOSK_USE_SHARE
        if r < MOBILE_DATA_SHARE:
            return user.devices[0], user.carrier[int(rng.random() * len(user.carrier))]
        r -= MOBILE_DATA_SHARE
        if r < PUBLIC_WIFI_SHARE:
            return user.devices[0], net.public_wifi(where)
        r -= PUBLIC_WIFI_SHARE
        office = user.workplace
        if office is not None and r < AT_WORK_SHARE:
            shared_pc = bool(office.devices) and rng.random() < OFFICE_PC_SHARE
            return (office.devices[0] if shared_pc else personal), office.ip
        if user.home.devices and rng.random() < FAMILY_DEVICE_SHARE:
            return user.home.devices[0], user.home.ip
        return personal, user.home.ip

    def _micro(self, user: User, card: str, where: str, now_ms: int) -> Draft:
        """A genuine micro-payment: verification or app store online (card currency), or a
        transit fare in person (local currency)."""
        rng = self.rng
        r = rng.random()
        if r < 0.3:
            site = self._local_site_of(where, "transit")
            currency = CURRENCY_OF[where]
            return Draft(now_ms, user.user_id, card, site, where, None, None,
                         micro_amount(rng, currency, TRANSIT), currency)
        kind = VERIFY if r < 0.65 else APP_STORE
        site = (self.random_online_site(("digital_goods",)) if kind == APP_STORE
                else self.sites[user.online_sites[int(rng.random() * len(user.online_sites))]])
        device, ip = self._online_context(user, where, now_ms)
        return Draft(now_ms, user.user_id, card, site, where, device, ip,
                     micro_amount(rng, user.currency, kind), user.currency)

    def _local_site_of(self, country: str, category: str) -> Site:
        pool = self._local_by_category.get((country, category))
        if pool is None:
            pool = [i for i in self.by_country[country]
                    if self.sites[i].category == category] or self.by_country[country]
            self._local_by_category[(country, category)] = pool
        return self.sites[pool[int(self.rng.random() * len(pool))]]

    def _new_phone(self, user: User, now_ms: int) -> None:
        new = self.ids.device()
        self.phone_changes.append(PhoneChange(user.user_id, user.devices[0], new, now_ms))
        user.devices[0] = new

    # -- cards ---------------------------------------------------------------------------

    def card_of(self, user: User, now_ms: int) -> str:
        """A card the user pays with at ``now_ms`` (mostly the first), reissued if due."""
        cards = user.cards
        card = (cards[0] if len(cards) == 1 or self.rng.random() < 0.7
                else cards[int(self.rng.random() * len(cards))])
        while now_ms >= self.reissue_at.get(card, NEVER_MS):  # a replacement may be due too
            card = self._reissue(card)
        return card

    def holder(self, card_id: str) -> User | None:
        """The card's first holder (None for a card no genuine user holds)."""
        holders = self.card_holders.get(card_id)
        return holders[0] if holders else None

    def schedule_reissue(self, card_id: str, due_ms: int) -> None:
        """The issuer replaces ``card_id`` at ``due_ms`` (after fraud on it was reported);
        an earlier renewal stands."""
        if card_id in self.card_holders and due_ms < self.reissue_at[card_id]:
            self.reissue_at[card_id] = due_ms
            self._fraud_due.add(card_id)

    def _reissue(self, card: str) -> str:
        due = self.reissue_at.pop(card)
        new = self._new_card(due)
        holders = self.card_holders.pop(card)
        for user in holders:
            user.cards[user.cards.index(card)] = new
        self.card_holders[new] = holders
        cause = "fraud" if card in self._fraud_due else "renewal"
        self._fraud_due.discard(card)
        self.reissues.append(Reissue(card, new, due, cause))
        return new

    # -- what the scenarios borrow -------------------------------------------------------

    def random_user(self) -> User:
        return self.users[int(self.rng.random() * len(self.users))]

    def users_in(self, country: str) -> list[User]:
        return self.by_home[country]

    def purchase_usd(self, site: Site, spend: float) -> float:
        """A typical amount at ``site`` for a user with spending level ``spend``."""
        return max(1.0, math.exp(site.log_mean + self.rng.gauss(0.0, 0.6)) * spend)

    def random_online_site(self, categories: tuple[str, ...] = ()) -> Site:
        pool = self._online_by_categories.get(categories)
        if pool is None:
            pool = [i for i in self.online_sites if not categories
                    or self.sites[i].category in categories] or self.online_sites
            self._online_by_categories[categories] = pool
        return self.sites[pool[int(self.rng.random() * len(pool))]]

    def random_local_site(self, country: str) -> Site:
        pool = self.by_country[country]
        return self.sites[pool[int(self.rng.random() * len(pool))]]

    def active_time(self, start_ms: int, span_ms: int) -> int:
        """A time in [start, start + span) that follows the daily and weekly rhythm."""
        rng = self.rng
        while True:
            t = start_ms + int(rng.random() * span_ms)
            hour = t // HOUR_MS
            if rng.random() < HOUR_FACTOR[hour % 24] * DAY_FACTOR[(hour // 24 + 3) % 7]:
                return t
