"""A seeded card population and its genuine traffic, for the generator.

Users have a home country, 1-3 cards, 1-2 devices and an IP, favourite local
and online sites, a spending level and an activity level.  Traffic follows a
daily and weekly rhythm; about 2% of card-present purchases happen abroad
(travel).  Everything is drawn from one ``random.Random`` so a seed fixes it all.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from dataclasses import dataclass

from ingest.iso import PER_USD

#: Home countries of the population, with weights, and their currency.
COUNTRY_WEIGHTS = {"US": 30, "GB": 12, "DE": 10, "FR": 8, "CA": 6, "ES": 5, "IT": 5, "NL": 4,
                   "BR": 4, "MX": 3, "IN": 3, "JP": 3, "AU": 3, "SE": 2, "PL": 2}
CURRENCY_OF = {"US": "USD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "CA": "CAD", "ES": "EUR",
               "IT": "EUR", "NL": "EUR", "BR": "BRL", "MX": "MXN", "IN": "INR", "JP": "JPY",
               "AU": "AUD", "SE": "SEK", "PL": "PLN", "RO": "RON", "NG": "NGN", "UA": "UAH",
               "VN": "VND", "ID": "IDR", "TH": "THB", "TR": "TRY"}
ZERO_DECIMAL = frozenset({"JPY", "VND"})
#: Countries where fraudsters operate from in the scenarios.
FRAUD_COUNTRIES = ("RO", "NG", "UA", "VN", "ID", "BR", "TR", "TH")

#: Merchant categories: (name, log-mean USD amount, online share of sites).
CATEGORIES = (
    ("grocery", 3.3, 0.1), ("restaurants", 3.2, 0.05), ("fuel", 3.7, 0.0),
    ("fashion", 4.0, 0.5), ("electronics", 5.0, 0.6), ("travel", 5.6, 0.7),
    ("digital_goods", 2.6, 1.0), ("pharmacy", 3.1, 0.2), ("entertainment", 3.4, 0.5),
    ("gift_cards", 4.3, 0.8),
)
#: Relative traffic by hour of day (UTC) and by weekday (Monday first).
HOUR_FACTOR = (0.15, 0.1, 0.08, 0.08, 0.1, 0.2, 0.4, 0.6, 0.75, 0.85, 0.9, 0.95,
               1.0, 0.95, 0.9, 0.9, 0.95, 1.0, 1.0, 0.95, 0.85, 0.7, 0.5, 0.3)
DAY_FACTOR = (0.9, 0.92, 0.95, 0.97, 1.0, 0.95, 0.8)
TRAVEL_SHARE = 0.02
ONLINE_SHARE = 0.45


@dataclass(frozen=True)
class Site:
    site_id: str
    category: str
    log_mean: float
    country: str
    online: bool


@dataclass(frozen=True)
class User:
    user_id: str
    country: str
    cards: tuple[str, ...]
    devices: tuple[str, ...]
    ip: str
    spend: float  # multiplier on the category's typical amount
    local_sites: tuple[int, ...]
    online_sites: tuple[int, ...]


@dataclass(frozen=True)
class Draft:
    """One purchase before it gets its transaction id; ``scenario`` is None when genuine."""

    event_ms: int
    user_id: str
    card_id: str
    site: Site
    country: str
    device_id: str | None
    ip_address: str | None
    usd: float
    currency: str
    scenario: str | None = None

    @property
    def card_present(self) -> bool:
        return self.device_id is None


def local_amount(usd: float, currency: str) -> float:
    """Convert a USD amount into ``currency`` rounded to its minor unit (at least one unit)."""
    value = usd * PER_USD[currency]
    if currency in ZERO_DECIMAL:
        return float(max(1, round(value)))
    return max(0.01, round(value, 2))


class Population:
    """Users, cards, devices and sites drawn from ``rng``; and their genuine traffic."""

    def __init__(self, rng: random.Random, users: int, sites: int, start_ms: int,
                 daily_rate: float = 1.2) -> None:
        self.rng = rng
        countries = list(COUNTRY_WEIGHTS)
        weights = list(COUNTRY_WEIGHTS.values())
        self.sites = [self._site(i, rng.choices(countries, weights)[0]) for i in range(sites)]
        self.by_country: dict[str, list[int]] = {}
        self.online_sites = [i for i, s in enumerate(self.sites) if s.online]
        for i, site in enumerate(self.sites):
            if not site.online:
                self.by_country.setdefault(site.country, []).append(i)
        for country in countries:  # every home country has somewhere to shop
            if country not in self.by_country:
                self.sites.append(Site(f"s{len(self.sites):05d}", "grocery", 3.3, country, False))
                self.by_country[country] = [len(self.sites) - 1]
        self.travel_countries = sorted(self.by_country)
        self.users = [self._user(i, rng.choices(countries, weights)[0]) for i in range(users)]
        activity = [rng.lognormvariate(0.0, 0.8) for _ in self.users]
        self.cumulative = list(itertools.accumulate(activity))
        total_per_day = daily_rate * len(self.users)
        self.mean_gap_ms = 86_400_000 / total_per_day
        self.now_ms = start_ms
        self.card_owner = {card: user for user in self.users for card in user.cards}
        self._online_by_categories: dict[tuple[str, ...], list[int]] = {}

    def _site(self, i: int, country: str) -> Site:
        name, log_mean, online_share = self.rng.choice(CATEGORIES)
        return Site(f"s{i:05d}", name, log_mean, country, self.rng.random() < online_share)

    def _user(self, i: int, country: str) -> User:
        rng = self.rng
        cards = tuple(f"c{i:07d}{k}" for k in range(rng.choice((1, 1, 1, 2, 2, 3))))
        devices = tuple(f"d{i:07d}{k}" for k in range(rng.choice((1, 1, 2))))
        local = self.by_country[country]
        return User(
            user_id=f"u{i:07d}", country=country, cards=cards, devices=devices,
            ip=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
            spend=rng.lognormvariate(0.0, 0.35),
            local_sites=tuple(rng.sample(local, min(len(local), rng.randint(3, 8)))),
            online_sites=tuple(rng.sample(self.online_sites,
                                          min(len(self.online_sites), rng.randint(2, 6)))),
        )

    def next_purchase(self) -> Draft:
        """The next genuine purchase in event time (daily/weekly rhythm by thinning)."""
        rng = self.rng
        while True:
            self.now_ms += max(1, round(rng.expovariate(1.0) * self.mean_gap_ms))
            hour = self.now_ms // 3_600_000
            if rng.random() < HOUR_FACTOR[hour % 24] * DAY_FACTOR[(hour // 24 + 3) % 7]:
                break
        user = self.users[bisect.bisect(self.cumulative, rng.random() * self.cumulative[-1])]
        card = user.cards[0] if rng.random() < 0.7 else rng.choice(user.cards)
        device: str | None
        ip: str | None
        if rng.random() < ONLINE_SHARE:
            site = self.sites[rng.choice(user.online_sites)]
            country, device, ip = user.country, rng.choice(user.devices), user.ip
            currency = CURRENCY_OF[user.country]
        else:
            country = user.country
            if rng.random() < TRAVEL_SHARE:
                country = rng.choice(self.travel_countries)
                site = self.sites[rng.choice(self.by_country[country])]
            else:
                site = self.sites[rng.choice(user.local_sites)]
            device = ip = None
            currency = CURRENCY_OF[site.country]
        usd = math.exp(site.log_mean + rng.gauss(0.0, 0.6)) * user.spend
        return Draft(self.now_ms, user.user_id, card, site, country, device, ip, max(1.0, usd),
                     currency)

    def random_user(self) -> User:
        return self.users[self.rng.randrange(len(self.users))]

    def random_online_site(self, categories: tuple[str, ...] = ()) -> Site:
        pool = self._online_by_categories.get(categories)
        if pool is None:
            pool = [i for i in self.online_sites if not categories
                    or self.sites[i].category in categories] or self.online_sites
            self._online_by_categories[categories] = pool
        return self.sites[self.rng.choice(pool)]
