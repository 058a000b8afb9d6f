"""The seeded transaction generator: genuine traffic with labelled fraud injected.

``Generator(config)`` yields ``(Transaction, scenario | None)`` in event-time
order; the same config (seed included) always yields the same stream, byte for
byte once encoded.  Episodes of fraud start at random genuine events with a
probability chosen so that fraud is ``fraud_rate`` of all transactions, split
across scenarios by ``mix`` (shares of fraudulent transactions).
"""

from __future__ import annotations

import dataclasses
import heapq
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec

from ingest import scenarios
from ingest.iso import CURRENCY_EXPONENT
from ingest.population import Draft, Population, local_amount
from ingest.transaction import Transaction, iso_from_ms

DEFAULT_START = "2026-01-01T00:00:00Z"


@dataclass(frozen=True)
class GeneratorConfig:
    seed: int = 42
    users: int = 10_000
    sites: int = 1_000
    start: str = DEFAULT_START
    fraud_rate: float = 0.01
    mix: Mapping[str, float] = field(default_factory=lambda: dict(scenarios.DEFAULT_MIX))
    label_delay_ms: int = 3 * scenarios.DAY

    def __post_init__(self) -> None:
        unknown = set(self.mix) - set(scenarios.SCENARIOS)
        if unknown:
            raise ValueError(f"unknown scenario(s) {', '.join(sorted(unknown))}; known: "
                             f"{', '.join(scenarios.SCENARIOS)}")
        if not 0 <= self.fraud_rate < 0.5:
            raise ValueError(f"fraud rate {self.fraud_rate} must be in [0, 0.5)")
        if any(w < 0 for w in self.mix.values()) or (self.fraud_rate and not
                                                     sum(self.mix.values())):
            raise ValueError("scenario shares must be non-negative and not all zero")
        if self.users < 50 or self.sites < 20:
            raise ValueError("need at least 50 users and 20 sites")

    @property
    def start_ms(self) -> int:
        return int(datetime.fromisoformat(self.start).astimezone(UTC).timestamp() * 1000)


class Label(msgspec.Struct, frozen=True):
    """Ground truth for one fraudulent transaction (also the `fraud-labels` record)."""

    transaction_id: str
    label: str
    scenario: str
    source: str
    reported_at: str
    event_time: str
    card_id: str
    user_id: str


def label_for(tx: Transaction, scenario: str, delay_ms: int) -> Label:
    return Label(transaction_id=tx.transaction_id, label="fraud", scenario=scenario,
                 source="generator", reported_at=iso_from_ms(tx.event_ms + delay_ms),
                 event_time=tx.timestamp, card_id=tx.card_id, user_id=tx.user_id)


class Generator:
    """Iterate to get the stream; it is endless (stop by count or duration)."""

    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.population = Population(self.rng, config.users, config.sites, config.start_ms)
        total = sum(config.mix.values()) or 1.0
        weights = {s: w / total / scenarios.MEAN_SIZE[s] for s, w in config.mix.items() if w}
        self.scenario_names = list(weights)
        self.scenario_weights = list(weights.values())
        mean_episode = (sum(w * scenarios.MEAN_SIZE[s] for s, w in weights.items())
                        / (sum(weights.values()) or 1.0))
        odds = config.fraud_rate / (1 - config.fraud_rate)
        self.episode_probability = odds / mean_episode if weights else 0.0
        self.max_usd: dict[str, float] = {}
        self.compromised: dict[str, list[int]] = {}  # site_id -> [remaining, episode, start]
        #: Closed compromise windows: (site_id, first_ms, last_ms); the cards paying at the
        #: site within a window are exposed, and some are misused days later (the
        #: misuse is labelled compromised_site; the exposing purchases are genuine).
        self.compromise_windows: list[tuple[str, int, int]] = []
        self.pending: list[tuple[int, int, Draft]] = []
        #: card id -> event time its fraud is reported; the holder's later purchases use
        #: the replacement card ``<card id>r`` (as issuers reissue a compromised card)
        self.reissued: dict[str, int] = {}
        self.episodes = 0
        self.pushes = 0
        self.sequence = 0

    def __iter__(self) -> Iterator[tuple[Transaction, str | None]]:
        population, pending = self.population, self.pending
        genuine = population.next_purchase()
        while True:
            if pending and pending[0][0] <= genuine.event_ms:
                draft = heapq.heappop(pending)[2]
            else:
                draft, genuine = self._observe(genuine), population.next_purchase()
            if draft.scenario is not None:  # the issuer replaces a card once its fraud is reported
                reported = draft.event_ms + self.config.label_delay_ms
                self.reissued[draft.card_id] = min(self.reissued.get(draft.card_id, reported),
                                                   reported)
            self.sequence += 1
            yield self._transaction(draft), draft.scenario

    def _observe(self, draft: Draft) -> Draft:
        """Track a genuine draft (history, compromise windows), maybe start fraud."""
        replaced_at = self.reissued.get(draft.card_id)
        if replaced_at is not None and draft.event_ms >= replaced_at:
            draft = dataclasses.replace(draft, card_id=f"{draft.card_id}r")
        if draft.usd > self.max_usd.get(draft.user_id, 0.0):
            self.max_usd[draft.user_id] = draft.usd
        window = self.compromised.get(draft.site.site_id)
        if window is not None:
            window[0] -= 1
            if window[0] <= 0:
                del self.compromised[draft.site.site_id]
                self.compromise_windows.append((draft.site.site_id, window[2], draft.event_ms))
            if self.rng.random() < scenarios.MISUSE_SHARE:
                self._push(scenarios.misuse(self.population, self.rng, draft.event_ms,
                                            window[1], draft.card_id))
            # The purchase itself is the card holder's own (the card is skimmed, not
            # used by fraudsters yet): it stays genuine, the later misuse is the fraud.
            return draft
        if self.rng.random() < self.episode_probability:
            self._start_episode(draft)
        return draft

    def _start_episode(self, trigger: Draft) -> None:
        self.episodes += 1
        name = self.rng.choices(self.scenario_names, self.scenario_weights)[0]
        if name == scenarios.COMPROMISED_SITE:
            if trigger.site.site_id not in self.compromised:
                size = self.rng.randint(*scenarios.COMPROMISE_SIZE)
                self.compromised[trigger.site.site_id] = [size, self.episodes,
                                                          trigger.event_ms + 1]
            return
        episode = scenarios.EPISODES[name]
        for draft in episode(self.population, self.rng, trigger.event_ms + 1, self.episodes,
                             self.max_usd):
            self._push(draft)

    def _push(self, draft: Draft) -> None:
        self.pushes += 1  # tie-breaker: equal times keep their push order
        heapq.heappush(self.pending, (draft.event_ms, self.pushes, draft))

    def _transaction(self, draft: Draft) -> Transaction:
        amount = local_amount(draft.usd, draft.currency)
        site = draft.site
        return Transaction(
            transaction_id=f"tx{self.config.seed}-{self.sequence:09d}",
            event_ms=draft.event_ms,
            amount_minor=round(amount * 10 ** CURRENCY_EXPONENT[draft.currency]),
            currency=draft.currency, card_id=draft.card_id, user_id=draft.user_id,
            site_id=site.site_id, country=draft.country, device_id=draft.device_id,
            ip_address=draft.ip_address, merchant_category=site.category,
            card_present=draft.card_present)
