"""The learned model's feature vector, computed by the engine at decision time (pure).

One definition serves training and serving: the daemon computes each transaction's
vector here, decides with it, and logs it on the ``training`` topic beside the
decision (:class:`TrainingRecord`); training reads those records back, so a model
learns from exactly what serving saw.  :data:`NAMES` fixes the order and
:data:`SCHEMA_VERSION` changes with any change of meaning or order: a daemon
refuses a model trained on another schema.

What a vector holds for a transaction at event time ``t`` (everything as of ``t``,
from the state *before* the transaction):

* **holder history** (card, user): count, sum, mean and max amount (USD) over the
  last 1 h / 1 d / 7 d / 30 d, the amount against the holder's 30-day mean and
  maximum, seconds since the holder's previous payment (the last
  :data:`HISTORY` payments of each holder are kept);
* **novelty** for the card: a site, country or device it never used before;
* **sites and devices**: transactions in the last day and 30 days, confirmed frauds
  of the last 30 days known at ``t`` and their rate;
* **labels**: confirmed frauds on the card and the user known at ``t``.  A fraud
  counts from its label's *report* time plus the graph's as-of lag, never from
  the fraud's own time, so no vector reads a label reported after its transaction;
* **graph** (as of ``t - as_of_lag``, from :mod:`detectors.graph_checks` facts): the
  card's holders, the device's cards and users, ring membership, confirmed fraud
  within two hops, the GNN risk of card and device;
* **rules**: every reason code's outcome, and the noisy-or of the rules' and of the
  graph's weights.  A blocklist hit on an entry a graph detector flagged (a ring
  member, a GNN suspect) counts as the graph's (its reason's detector is that
  detector's), so the "without graph" ablation sees nothing the graph produced.

Names starting with :data:`GRAPH_PREFIXES` are the graph features (the
"without graph" ablation leaves them out).
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right, insort
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from detectors.config import GraphConfig
from detectors.decision import CYPHER, GNN, RULE, Reason
from detectors.graph_checks import BatchFacts, known_ms
from detectors.rules import Lru, to_usd
from ingest.transaction import Transaction

SCHEMA_VERSION = 2
HOUR_MS, DAY_MS = 3_600_000, 86_400_000
WINDOWS = (("1h", HOUR_MS), ("1d", DAY_MS), ("7d", 7 * DAY_MS), ("30d", 30 * DAY_MS))
_WIDTHS = tuple(width for _, width in WINDOWS)
HISTORY = 64  # payments kept per card and per user (the windows see at most these)
SEEN_CAP = 64  # distinct sites, countries and devices remembered per card
FRAUD_WINDOW_MS = 30 * DAY_MS
FRAUDS_KEPT = 256  # confirmed frauds remembered per site and device (the latest reports)
#: reason codes with an outcome feature each (rules, then graph checks)
RULE_CODES = ("blocklist_card", "blocklist_user", "blocklist_device", "blocklist_ip",
              "blocklist_site", "velocity", "card_testing", "amount_spike", "country_hop",
              "unfamiliar_country", "new_device_high_amount", "shared_device", "shared_ip")
GRAPH_CODES = ("shared_device", "shared_card", "fraud_ring", "near_fraud", "compromised_site",
               "gnn_card", "gnn_device", "blocklist_user", "blocklist_device")
GRAPH_PREFIXES = ("graph_", "gnn_")


def _names() -> tuple[str, ...]:
    names = ["amount_usd", "hour_of_day"]
    for holder in ("card", "user"):
        for window, _ in WINDOWS:
            names += [f"{holder}_{stat}_{window}" for stat in ("count", "sum", "mean", "max")]
        names += [f"{holder}_amount_vs_mean_30d", f"{holder}_amount_vs_max_30d",
                  f"{holder}_seconds_since_previous"]
    names += ["card_new_site", "card_new_country", "card_new_device"]
    for entity in ("site", "device"):
        names += [f"{entity}_count_1d", f"{entity}_count_30d", f"{entity}_frauds_30d",
                  f"{entity}_fraud_rate_30d"]
    names += ["card_frauds_known", "user_frauds_known"]
    names += ["graph_card_holders", "graph_device_cards", "graph_device_users", "graph_ring",
              "graph_near_fraud", "gnn_card_risk", "gnn_device_risk"]
    names += [f"rule_{code}" for code in RULE_CODES]
    names += [f"graph_reason_{code}" for code in GRAPH_CODES]
    names += ["rules_score", "graph_score"]
    return tuple(names)


NAMES = _names()
INDEX = {name: i for i, name in enumerate(NAMES)}
MISSING = -1.0  # a value that does not exist (no previous payment, no amount history)


def graph_feature(name: str) -> bool:
    return name.startswith(GRAPH_PREFIXES)


class TrainingRecord(msgspec.Struct, frozen=True):
    """One record per decision on the ``training`` topic (key ``transaction_id``): the
    vector the decision saw, float32 little-endian (base64 in JSON)."""

    transaction_id: str
    event_ms: int
    card_id: str
    schema: int
    vector: bytes


class Payments:
    """A holder's last :data:`HISTORY` payments: times and amounts in two arrays of plain
    numbers (no tuple per payment for the garbage collector to walk)."""

    __slots__ = ("ms", "usd")

    def __init__(self) -> None:
        self.ms: array[int] = array("q")
        self.usd: array[float] = array("d")

    def append(self, ms: int, usd: float) -> None:
        if len(self.ms) >= HISTORY:
            del self.ms[0], self.usd[0]
        self.ms.append(ms)
        self.usd.append(usd)


class Rolling:
    """Events per hour bucket over the last ``width_ms`` of event time: ``add`` and
    ``total`` are amortised O(1).  An event older than the newest bucket counts in it."""

    __slots__ = ("buckets", "total", "width")

    def __init__(self, width_ms: int) -> None:
        self.width = width_ms // HOUR_MS
        self.buckets: deque[list[int]] = deque()
        self.total = 0

    def count(self, at_ms: int) -> int:
        hour = at_ms // HOUR_MS
        while self.buckets and self.buckets[0][0] <= hour - self.width:
            self.total -= self.buckets.popleft()[1]
        return self.total

    def add(self, at_ms: int) -> None:
        hour = at_ms // HOUR_MS
        if self.buckets and self.buckets[-1][0] >= hour:
            self.buckets[-1][1] += 1
        else:
            self.buckets.append([hour, 1])
        self.total += 1


@dataclass
class CardSeen:
    sites: set[str]
    countries: set[str]
    devices: set[str]


@dataclass(frozen=True)
class KnownFraud:
    """A confirmed fraud as the label worker resolved it; it counts from ``known_ms``
    (report time plus the graph's as-of lag)."""

    transaction_id: str
    known_ms: int
    event_ms: int
    card_id: str | None
    user_id: str | None
    site_id: str | None
    device_id: str | None


class FeatureState:
    """The state the vectors read, bounded like the rule state (least recent keys go)."""

    def __init__(self, max_keys: int = 500_000) -> None:
        self.history: dict[str, Lru[str, Payments]] = {
            holder: Lru(max_keys, Payments) for holder in ("card", "user")}
        self.seen: Lru[str, CardSeen] = Lru(max_keys, lambda: CardSeen(set(), set(), set()))
        self.counts: dict[str, Lru[str, tuple[Rolling, Rolling]]] = {
            entity: Lru(max_keys, lambda: (Rolling(DAY_MS), Rolling(FRAUD_WINDOW_MS)))
            for entity in ("site", "device")}
        #: entity -> id -> sorted (known ms, event ms) of its confirmed frauds
        self.frauds: dict[str, Lru[str, list[tuple[int, int]]]] = {
            entity: Lru(max_keys, list) for entity in ("card", "user", "site", "device")}
        self.labelled: Lru[str, bool] = Lru(max_keys, bool)

    def learn_frauds(self, frauds: Iterable[KnownFraud]) -> None:
        """Take confirmed frauds in (once each); a vector sees one from its ``known_ms``."""
        for fraud in frauds:
            if fraud.transaction_id in self.labelled.data:
                continue
            self.labelled.get(fraud.transaction_id)
            for entity, entity_id in (("card", fraud.card_id), ("user", fraud.user_id),
                                      ("site", fraud.site_id), ("device", fraud.device_id)):
                if entity_id:
                    known = self.frauds[entity].get(entity_id)
                    insort(known, (fraud.known_ms, fraud.event_ms))
                    if entity in ("site", "device") and len(known) > FRAUDS_KEPT:
                        del known[:len(known) - FRAUDS_KEPT]  # the oldest reports go

    def vector(self, tx: Transaction, reasons: Sequence[Reason], facts: BatchFacts | None,
               graph: GraphConfig) -> list[float]:
        """``tx``'s features from the state before it, then ``tx`` joins the state."""
        usd = to_usd(tx.amount_minor, tx.currency)
        amount = usd if usd is not None else MISSING
        at = known_ms(tx, graph)
        row = [amount, float((tx.event_ms // HOUR_MS) % 24)]
        card, user = self.history["card"].get(tx.card_id), self.history["user"].get(tx.user_id)
        row += _holder(card, tx.event_ms, amount)
        row += _holder(user, tx.event_ms, amount)
        seen = self.seen.get(tx.card_id)
        row += [float(tx.site_id not in seen.sites), float(tx.country not in seen.countries),
                float(bool(tx.device_id) and tx.device_id not in seen.devices)]
        # a fraud's known_ms already holds the as-of lag: compare it with the event time
        for entity, maybe in (("site", tx.site_id), ("device", tx.device_id)):
            row += self._entity(entity, maybe, tx.event_ms, tx.event_ms)
        row += [float(self._known(entity, key, tx.event_ms, None))
                for entity, key in (("card", tx.card_id), ("user", tx.user_id))]
        row += _graph(tx, facts, at)
        codes = {(r.detector, r.code) for r in reasons}
        row += [float((RULE, code) in codes) for code in RULE_CODES]
        row += [float((CYPHER, code) in codes or (GNN, code) in codes) for code in GRAPH_CODES]
        row += [_noisy_or(r.weight for r in reasons if r.detector == RULE),
                _noisy_or(r.weight for r in reasons if r.detector != RULE)]
        card.append(tx.event_ms, amount)
        user.append(tx.event_ms, amount)
        self._remember(tx, seen)
        return row

    def _entity(self, entity: str, key: str | None, event_ms: int, at: int) -> list[float]:
        if not key:
            return [MISSING, MISSING, MISSING, MISSING]
        day, month = self.counts[entity].get(key)
        frauds = self._known(entity, key, at, event_ms - FRAUD_WINDOW_MS)
        seen = month.count(event_ms)
        return [float(day.count(event_ms)), float(seen), float(frauds),
                frauds / seen if seen else 0.0]

    def _known(self, entity: str, key: str | None, at: int, since_event_ms: int | None) -> int:
        """Confirmed frauds of the entity known at ``at`` (event at or after ``since``)."""
        if not key:
            return 0
        table = self.frauds[entity].data.get(key)
        if not table:
            return 0
        known = table[:bisect_right(table, (at, math.inf))]
        if since_event_ms is None:
            return len(known)
        return sum(1 for _, event in known if event >= since_event_ms)

    def _remember(self, tx: Transaction, seen: CardSeen) -> None:
        for values, value in ((seen.sites, tx.site_id), (seen.countries, tx.country),
                              (seen.devices, tx.device_id)):
            if value and len(values) < SEEN_CAP:
                values.add(value)
        for entity, maybe in (("site", tx.site_id), ("device", tx.device_id)):
            if maybe:
                for rolling in self.counts[entity].get(maybe):
                    rolling.add(tx.event_ms)

    def snapshot(self) -> dict[str, Any]:
        """The state as plain data, for the rule-state checkpoint."""
        return {
            "history": {h: [[k, v.ms.tobytes(), v.usd.tobytes()] for k, v in t.data.items()]
                        for h, t in self.history.items()},
            "seen": [[k, sorted(v.sites), sorted(v.countries), sorted(v.devices)]
                     for k, v in self.seen.data.items()],
            "counts": {e: [[k, [[list(b) for b in r.buckets] for r in pair]]
                           for k, pair in t.data.items()] for e, t in self.counts.items()},
            "frauds": {e: [[k, [list(f) for f in v]] for k, v in t.data.items()]
                       for e, t in self.frauds.items()},
            "labelled": list(self.labelled.data)}

    def restore(self, state: dict[str, Any]) -> None:
        for holder, rows in state["history"].items():
            for key, times, amounts in rows:
                payments = self.history[holder].get(key)
                payments.ms.frombytes(times)
                payments.usd.frombytes(amounts)
                if len(payments.ms) != len(payments.usd) or len(payments.ms) > HISTORY:
                    raise ValueError(f"payments of {holder} {key!r} do not match")
        for key, sites, countries, devices in state["seen"]:
            self.seen.data[key] = CardSeen(set(sites), set(countries), set(devices))
        for entity, rows in state["counts"].items():
            for key, pair in rows:
                for rolling, buckets in zip(self.counts[entity].get(key), pair, strict=True):
                    rolling.buckets.extend([int(h), int(n)] for h, n in buckets)
                    rolling.total = sum(n for _, n in rolling.buckets)
        for entity, rows in state["frauds"].items():
            for key, values in rows:
                self.frauds[entity].data[key] = [(int(k), int(e)) for k, e in values]
        for key in state["labelled"]:
            self.labelled.data[key] = True


def _holder(history: Payments, event_ms: int, amount: float) -> list[float]:
    """Count, sum, mean, max per window, then the amount against the 30-day mean and max
    and the seconds since the previous payment.  One pass from the newest payment back:
    each lands in the narrowest window holding it (its band), the bands then add up."""
    count, total, peak = [0, 0, 0, 0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]
    hour, day, week, month = _WIDTHS
    previous = -1
    times, amounts = history.ms, history.usd
    for i in range(len(times) - 1, -1, -1):
        ms, usd = times[i], amounts[i]
        age = event_ms - ms
        if age < 0:
            continue  # a later event seen earlier (out of order): not this one's past
        if ms > previous:
            previous = ms
        if age >= month:
            break  # the history is in time order: the rest is older still
        if usd < 0:
            continue  # an amount without a reference rate
        band = 0 if age < hour else 1 if age < day else 2 if age < week else 3
        count[band] += 1
        total[band] += usd
        if usd > peak[band]:
            peak[band] = usd
    row: list[float] = []
    n, t, m = 0, 0.0, 0.0
    for i in range(4):
        n += count[i]
        t += total[i]
        if peak[i] > m:
            m = peak[i]
        row += [float(n), t, t / n if n else MISSING, m if n else MISSING]
    month_mean, month_max = row[-2], row[-1]
    row += [amount / month_mean if month_mean > 0 and amount >= 0 else MISSING,
            amount / month_max if month_max > 0 and amount >= 0 else MISSING,
            (event_ms - previous) / 1000 if previous >= 0 else MISSING]
    return row


def _graph(tx: Transaction, facts: BatchFacts | None, at: int) -> list[float]:
    """Holders, device sharing, ring, nearby fraud, GNN risk: as of ``at``."""
    if facts is None:
        return [0.0] * 7
    card = facts.cards.get(tx.card_id)
    device = facts.devices.get(tx.device_id) if tx.device_id else None
    holders = [user for user, ms in card.holders if ms <= at] if card is not None else []
    members = {*holders, tx.user_id}
    ring = any(facts.ring_visible_ms.get(user, at + 1) <= at for user in members)
    near = card is not None and card.near_fraud_ms is not None and card.near_fraud_ms <= at
    return [float(len(holders)),
            float(bisect_right(device.card_ms, at)) if device is not None else 0.0,
            float(bisect_right(device.user_ms, at)) if device is not None else 0.0,
            float(ring), float(near),
            _risk(card.risk_score, card.risk_scored_ms, at) if card is not None else 0.0,
            _risk(device.risk_score, device.risk_scored_ms, at) if device is not None else 0.0]


def _risk(score: float | None, scored_ms: int | None, at: int) -> float:
    return float(score) if score is not None and scored_ms is not None and scored_ms <= at \
        else 0.0


def _noisy_or(weights: Iterable[float]) -> float:
    keep = 1.0
    for weight in weights:
        keep *= 1.0 - weight
    return 1.0 - keep
