"""The seeded transaction generator: genuine traffic with labelled fraud injected.

``Generator(config)`` yields ``(Transaction, scenario | None)`` in event-time
order; the same config (seed included) always yields the same stream, byte for
byte once encoded.  Episodes of fraud start at random genuine events with a
probability chosen so that fraud is ``fraud_rate`` of all transactions, split
across scenarios by ``mix`` (shares of fraudulent transactions).

Genuine traffic and its noise (households, carrier NAT, travel, micro-payments,
bursts, reissues) come from :mod:`ingest.population`; fraud comes from
:mod:`ingest.scenarios`, drawn from the same id, address, country and currency
spaces, so only behaviour tells the two apart.  The scenario yielded beside a
transaction is the only mark of fraud.

Labels are late and uneven, as chargebacks are: a fraud's label is reported at
:func:`report_ms`, between 0.5x and 3x ``label_delay_ms`` after the event (most
near 1x), a fixed function of the transaction id.  The issuer then replaces the
card at a random delay after the report (0-4 days), and some cards never;
genuine cards are replaced at random times too (renewal, loss).
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec

from ingest import scenarios
from ingest.population import DAY_MS, Draft, Population
from ingest.transaction import Transaction, iso_from_ms

DEFAULT_START = "2026-01-01T00:00:00Z"
#: A label is reported between these multiples of ``label_delay_ms`` after its event.
LABEL_DELAY_MIN_FACTOR = 0.5
LABEL_DELAY_MAX_FACTOR = 3.0
#: After a fraud report the card is replaced within this delay, or (this share) never.
REISSUE_DELAY_MAX_MS = 4 * DAY_MS
NEVER_REISSUED_SHARE = 0.15


@dataclass(frozen=True)
class GeneratorConfig:
    seed: int = 42
    users: int = 10_000
    sites: int = 1_000
    start: str = DEFAULT_START
    fraud_rate: float = 0.01
    mix: Mapping[str, float] = field(default_factory=lambda: dict(scenarios.DEFAULT_MIX))
    label_delay_ms: int = 3 * DAY_MS
    #: before every user, card and device id: a second population beside the first
    #: (sites and addresses are shared, as merchants and networks are)
    id_prefix: str = ""

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
        if self.id_prefix and not (self.id_prefix.isascii() and self.id_prefix.isalnum()
                                   and len(self.id_prefix) <= 8):
            raise ValueError(f"id prefix {self.id_prefix[:20]!r} must be 1-8 letters or digits")

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
    site_id: str
    device_id: str | None


def report_ms(tx: Transaction, delay_ms: int) -> int:
    """When the fraud label of ``tx`` is reported, in epoch ms: between 0.5x and 3x
    ``delay_ms`` after the event, skewed towards the low end (median about 1.1x).

    A pure function of the transaction id, so the generator (which replaces the card
    after the report) and every sink of labels agree on it.
    """
    digest = hashlib.blake2b(tx.transaction_id.encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2**64
    span = LABEL_DELAY_MAX_FACTOR - LABEL_DELAY_MIN_FACTOR
    return tx.event_ms + round(delay_ms * (LABEL_DELAY_MIN_FACTOR + span * u * u))


def label_for(tx: Transaction, scenario: str, delay_ms: int) -> Label:
    """The ``fraud-labels`` record of a fraudulent ``tx``, reported at :func:`report_ms`."""
    return Label(transaction_id=tx.transaction_id, label="fraud", scenario=scenario,
                 source="generator", reported_at=iso_from_ms(report_ms(tx, delay_ms)),
                 event_time=tx.timestamp, card_id=tx.card_id, user_id=tx.user_id,
                 site_id=tx.site_id, device_id=tx.device_id)


class Generator:
    """Iterate to get the stream; it is endless (stop by count or duration).

    Attributes tests and tools read: ``population`` (users, sites, ``reissues``,
    ``phone_changes``), ``compromised`` (open compromise windows: site id ->
    ``[transactions left, first_ms]``) and ``compromise_windows`` (closed ones:
    ``(site_id, first_ms, last_ms)``).
    """

    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.population = Population(self.rng, config.users, config.sites, config.start_ms,
                                     id_prefix=config.id_prefix)
        total = sum(config.mix.values()) or 1.0
        weights = {s: w / total / scenarios.MEAN_SIZE[s] for s, w in config.mix.items() if w}
        self.scenario_names = list(weights)
        self.scenario_weights = list(weights.values())
        mean_episode = (sum(w * scenarios.MEAN_SIZE[s] for s, w in weights.items())
                        / (sum(weights.values()) or 1.0))
        odds = config.fraud_rate / (1 - config.fraud_rate)
        self.episode_probability = odds / mean_episode if weights else 0.0
        self.max_usd: dict[str, float] = {}
        self.compromised: dict[str, list[int]] = {}
        #: Closed compromise windows: (site_id, first_ms, last_ms); the cards paying at the
        #: site within a window are exposed, and some are misused days later (the
        #: misuse is labelled compromised_site; the exposing purchases are genuine).
        self.compromise_windows: list[tuple[str, int, int]] = []
        self.pending: list[tuple[int, int, Draft]] = []
        #: card id -> delay after a fraud report before the card is replaced (None: never)
        self.reissue_delay: dict[str, int | None] = {}
        self.pushes = 0
        self.sequence = 0

    def __iter__(self) -> Iterator[tuple[Transaction, str | None]]:
        pending = self.pending
        genuine = self._next_genuine()
        while True:
            if pending and pending[0][0] <= genuine.event_ms:
                draft = heapq.heappop(pending)[2]
                if draft.scenario is None:  # a genuine burst's follow-up
                    self._observe(draft)
            else:
                draft = genuine
                self._observe(draft)
                genuine = self._next_genuine()
            self.sequence += 1
            tx = self._transaction(draft)
            if draft.scenario is not None:
                self._after_fraud(tx)
            yield tx, draft.scenario

    def _next_genuine(self) -> Draft:
        draft = self.population.next_purchase()
        for more in self.population.follow_ups(draft):
            self._push(more)
        return draft

    def _observe(self, draft: Draft) -> None:
        """Track a genuine draft (history, compromise windows), maybe start fraud."""
        usd = draft.usd
        if usd > self.max_usd.get(draft.user_id, 0.0):
            self.max_usd[draft.user_id] = usd
        window = self.compromised.get(draft.site.site_id)
        if window is not None:
            window[0] -= 1
            if window[0] <= 0:
                del self.compromised[draft.site.site_id]
                self.compromise_windows.append((draft.site.site_id, window[1], draft.event_ms))
            if self.rng.random() < scenarios.MISUSE_SHARE:
                for misuse in scenarios.misuse(self.population, self.rng, draft.event_ms,
                                               draft.card_id, draft.site.site_id):
                    self._push(misuse)
            # The purchase itself is the card holder's own (the card is skimmed, not
            # used by fraudsters yet): it stays genuine, the later misuse is the fraud.
            return
        if self.rng.random() < self.episode_probability:
            self._start_episode(draft)

    def _start_episode(self, trigger: Draft) -> None:
        name = self.rng.choices(self.scenario_names, self.scenario_weights)[0]
        if name == scenarios.COMPROMISED_SITE:
            if trigger.site.site_id not in self.compromised:
                size = self.rng.randint(*scenarios.COMPROMISE_SIZE)
                self.compromised[trigger.site.site_id] = [size, trigger.event_ms + 1]
            return
        episode = scenarios.EPISODES[name]
        for draft in episode(self.population, self.rng, trigger.event_ms + 1, self.max_usd):
            self._push(draft)

    def _after_fraud(self, tx: Transaction) -> None:
        """The issuer replaces a defrauded card some time after the fraud is reported."""
        if tx.card_id not in self.population.card_holders:  # a fraudster's own card
            return
        if tx.card_id not in self.reissue_delay:
            self.reissue_delay[tx.card_id] = (
                None if self.rng.random() < NEVER_REISSUED_SHARE
                else self.rng.randrange(REISSUE_DELAY_MAX_MS))
        delay = self.reissue_delay[tx.card_id]
        if delay is not None:
            self.population.schedule_reissue(
                tx.card_id, report_ms(tx, self.config.label_delay_ms) + delay)

    def _push(self, draft: Draft) -> None:
        self.pushes += 1  # tie-breaker: equal times keep their push order
        heapq.heappush(self.pending, (draft.event_ms, self.pushes, draft))

    def _transaction(self, draft: Draft) -> Transaction:
        site = draft.site
        return Transaction(
            transaction_id=f"tx{self.config.seed}-{self.sequence:09d}",
            event_ms=draft.event_ms, amount_minor=draft.amount_minor,
            currency=draft.currency, card_id=draft.card_id, user_id=draft.user_id,
            site_id=site.site_id, country=draft.country, device_id=draft.device_id,
            ip_address=draft.ip_address, merchant_category=site.category,
            card_present=draft.device_id is None)
