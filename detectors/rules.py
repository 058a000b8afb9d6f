"""Streaming rules (SPEC §5): stateful per card, user, device and IP, bounded memory.

:class:`RuleEngine` is pure: ``evaluate(tx, blocked)`` returns the reasons a
transaction triggers against the state *before* it, then folds the
transaction into the state.  Windows run on event time (``tx.event_ms``), so a
backtest over last year's stream gives the decisions live traffic would have,
and a moderately late event is compared with what happened around its own
time.  Every state table is a bounded LRU: the least recently seen keys go
first, so memory stays flat however many cards pass through.

The members of a device or an IP (``shared_device``, ``shared_ip``) come from the
graph as of the transaction's time when the caller has its batch's graph facts
(:func:`detectors.graph_checks.device_members`), so every daemon of a group counts
alike; without the graph (the ``legacy`` preset, unit tests) from in-process sets.
Per-user state is exact when one process sees all of a user's transactions; with
several daemons sharing partitions (keyed by card) each sees a part of a user's
history.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

from detectors import graph_checks
from detectors.config import DetectorConfig
from detectors.decision import CYPHER, GNN, RULE, Reason
from ingest.event_clock import EventClock
from ingest.iso import CURRENCY_EXPONENT, PER_USD
from ingest.transaction import Transaction

#: ``blocked(entity_type, entity_id)`` → a short description of the active
#: blocklist entry, or None.
BlockedLookup = Callable[[str, str], str | None]
SET_CAP = 64  # distinct members remembered per device / IP / user devices
LATENESS_MS = 3_600_000  # events up to an hour late still see the history around them
USD_PER_MINOR = {code: 1 / (10 ** CURRENCY_EXPONENT[code] * rate)
                 for code, rate in PER_USD.items()}

K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):
    """A dict bounded to ``limit`` keys; reading or writing a key makes it recent."""

    def __init__(self, limit: int, factory: Callable[[], V]) -> None:
        self.limit, self.factory = limit, factory
        self.data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V:
        value = self.data.get(key)
        if value is None:
            value = self.data[key] = self.factory()
            if len(self.data) > self.limit:
                self.data.popitem(last=False)
        else:
            self.data.move_to_end(key)
        return value

    def __len__(self) -> int:
        return len(self.data)


class CardPayment(NamedTuple):
    """One payment in a card's recent history (what the velocity and card-testing
    windows read).  A plain tuple underneath: a checkpoint holds it as an array of
    four values in this order."""

    event_ms: int
    amount_minor: int
    usd: float  # inf for a currency without a reference rate: never a small amount
    site_id: str


class CountrySeen(NamedTuple):
    """A learnt transaction's time and country (what the country-hop rule reads); an
    array of two values in a checkpoint."""

    event_ms: int
    country: str


@dataclass
class UserState:
    count: int = 0
    max_usd: float = 0.0
    devices: set[str] = field(default_factory=set)
    countries: set[str] = field(default_factory=set)
    recent: deque[CountrySeen] = field(default_factory=lambda: deque(maxlen=8))
    #: the latest (then alphabetically last) of ``recent``: in a stream in time order,
    #: the country-hop rule's previous transaction without a scan
    newest: CountrySeen | None = None

    def remember(self, seen: CountrySeen) -> None:
        evicts_newest = (len(self.recent) == self.recent.maxlen
                         and self.recent[0] is self.newest)
        self.recent.append(seen)
        if evicts_newest:
            self.newest = max(self.recent)
        elif self.newest is None or seen > self.newest:
            self.newest = seen


def to_usd(amount_minor: int, currency: str) -> float | None:
    """The amount in US dollars at reference rates; None for a currency without a rate."""
    factor = USD_PER_MINOR.get(currency)
    return None if factor is None else amount_minor * factor


class RuleEngine:
    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        s = config.state
        history = s.history_per_card
        self.cards: Lru[str, deque[CardPayment]] = Lru(
            s.max_cards, lambda: deque(maxlen=history))
        self.users: Lru[str, UserState] = Lru(s.max_users, UserState)
        self.device_cards: Lru[str, set[str]] = Lru(s.max_devices, set)
        self.device_users: Lru[str, set[str]] = Lru(s.max_devices, set)
        self.ip_users: Lru[str, set[str]] = Lru(s.max_ips, set)
        #: card history older than the longest card window plus the lateness allowed for
        #: out-of-order events (event time) is never read again
        self.horizon_ms = max(config.rules.velocity.window_ms,
                              config.rules.card_testing.window_ms) + LATENESS_MS
        #: "now" for forgetting state: observed by the caller per batch, so one event
        #: dated far ahead evicts nothing (:mod:`ingest.event_clock`)
        self.clock = EventClock()

    def snapshot(self) -> dict[str, Any]:
        """The whole rule state, in LRU order (oldest first), for
        :mod:`detectors.checkpoint` to encode at once (the live objects: encode before
        the next transaction); :meth:`restore` reads the decoded form back."""
        return {name: list(getattr(self, name).data.items())
                for name in ("cards", "users", "device_cards", "device_users", "ip_users")}

    def restore(self, state: dict[str, Any]) -> None:
        """Replace the state with a decoded :meth:`snapshot` (this config's limits apply:
        with smaller limits the least recent keys are left out)."""
        history = self.config.state.history_per_card
        self.cards.data = OrderedDict(
            (k, deque((CardPayment(int(ms), int(minor), float(usd), str(site))
                       for ms, minor, usd, site in v), maxlen=history))
            for k, v in state["cards"][-self.cards.limit:])
        self.users.data = OrderedDict(
            (k, _restored_user(u)) for k, u in state["users"][-self.users.limit:])
        for name in ("device_cards", "device_users", "ip_users"):
            table: Lru[str, set[str]] = getattr(self, name)
            table.data = OrderedDict((k, set(v)) for k, v in state[name][-table.limit:])

    def state_sizes(self) -> dict[str, int]:
        return {"cards": len(self.cards), "users": len(self.users),
                "devices": len(self.device_cards), "ips": len(self.ip_users)}

    def evaluate(self, tx: Transaction, blocked: BlockedLookup,
                 facts: graph_checks.BatchFacts | None = None) -> list[Reason]:
        """The reasons ``tx`` triggers; then ``tx`` joins the activity state (card
        history; device and IP members unless ``facts``, the batch's graph facts, hold
        them).  Called once per transaction, in stream order, followed by :meth:`learn`
        once the transaction is decided."""
        rules = self.config.rules
        reasons: list[Reason] = []
        usd = to_usd(tx.amount_minor, tx.currency)
        card = self.cards.get(tx.card_id)
        user = self.users.get(tx.user_id)
        if rules.blocklist_hit.enabled:
            reasons.extend(self._blocklist_hits(tx, blocked))
        if rules.velocity.enabled:
            reasons.extend(self._velocity(tx, card))
        if rules.card_testing.enabled and usd is not None:
            reasons.extend(self._card_testing(tx, usd, card))
        if rules.amount_spike.enabled and usd is not None:
            spike = rules.amount_spike
            if user.count >= spike.min_history and usd > spike.factor * user.max_usd:
                reasons.append(Reason("amount_spike", RULE,
                                      f"{usd:.2f} USD > {spike.factor:g} x the user's previous "
                                      f"maximum {user.max_usd:.2f} USD", spike.weight,
                                      spike.flag))
        if rules.country_hop.enabled:
            reasons.extend(self._country_hop(tx, user))
        if rules.unfamiliar_country.enabled:
            unfamiliar = rules.unfamiliar_country
            if user.count >= unfamiliar.min_history and tx.country not in user.countries:
                reasons.append(Reason("unfamiliar_country", RULE,
                                      f"first transaction of the user in {tx.country}",
                                      unfamiliar.weight, unfamiliar.flag))
        if rules.new_device_high_amount.enabled and usd is not None and tx.device_id:
            new_device = rules.new_device_high_amount
            if (user.count >= new_device.min_history and tx.device_id not in user.devices
                    and usd >= new_device.high_amount_usd):
                reasons.append(Reason("new_device_high_amount", RULE,
                                      f"first use of this device by the user, {usd:.2f} USD",
                                      new_device.weight, new_device.flag))
        self._remember_activity(tx, usd, card, members=facts is None)
        if rules.shared_device.enabled and tx.device_id:
            reasons.extend(self._shared_device(tx, facts))
        if rules.shared_ip.enabled and tx.ip_address:
            shared_ip = rules.shared_ip
            users = (len(self.ip_users.get(tx.ip_address)) if facts is None
                     else graph_checks.ip_users(tx, facts, self.config.graph))
            if users > shared_ip.max_users:
                reasons.append(Reason("shared_ip", RULE, f"IP used by {users} users",
                                      shared_ip.weight, shared_ip.flag))
        return reasons

    def _blocklist_hits(self, tx: Transaction, blocked: BlockedLookup) -> list[Reason]:
        found = []
        for entity_type, weight in self.config.rules.blocklist_hit.weights:
            entity_id = entity_of(tx, entity_type)
            if entity_id is None:
                continue
            entry = blocked(entity_type, entity_id)
            if entry is not None:
                # an entry a graph detector flagged (a ring member, a GNN suspect) is that
                # detector's finding: the learned model's graph features say so
                source = entry.split(":", 1)[0]
                found.append(Reason(f"blocklist_{entity_type}",
                                    source if source in (CYPHER, GNN) else RULE,
                                    f"{entity_type} on the blocklist ({entry})", weight))
        return found

    def _velocity(self, tx: Transaction, card: deque[CardPayment]) -> list[Reason]:
        r = self.config.rules.velocity
        since = tx.event_ms - r.window_ms
        recent = [p for p in card if since <= p.event_ms <= tx.event_ms]
        if len(recent) + 1 < r.min_transactions:
            return []
        if r.require_different_amount and all(p.amount_minor == tx.amount_minor
                                              for p in recent):
            return []
        return [Reason("velocity", RULE, f"{len(recent) + 1} transactions on the card within "
                       f"{r.window_ms // 1000}s", r.weight, r.flag)]

    def _card_testing(self, tx: Transaction, usd: float,
                      card: deque[CardPayment]) -> list[Reason]:
        r = self.config.rules.card_testing
        if usd > r.small_amount_usd:
            return []
        since = tx.event_ms - r.window_ms
        small = [p for p in card
                 if since <= p.event_ms <= tx.event_ms and p.usd <= r.small_amount_usd]
        sites = {p.site_id for p in small} | {tx.site_id}
        if len(small) + 1 < r.min_small or len(sites) < r.min_sites:
            return []
        return [Reason("card_testing", RULE, f"{len(small) + 1} payments under "
                       f"{r.small_amount_usd:g} USD at {len(sites)} sites within "
                       f"{r.window_ms // 1000}s", r.weight, r.flag)]

    def _country_hop(self, tx: Transaction, user: UserState) -> list[Reason]:
        r = self.config.rules.country_hop
        # the latest (then alphabetically last) learnt transaction at or before this one:
        # the newest learnt, unless this one is older (a late event: look through them)
        previous = user.newest
        if previous is not None and previous.event_ms > tx.event_ms:
            previous = max((seen for seen in user.recent if seen.event_ms <= tx.event_ms),
                           default=None)
        if previous is None or previous.country == tx.country or \
                tx.event_ms - previous.event_ms > r.window_ms:
            return []
        minutes = (tx.event_ms - previous.event_ms) // 60_000
        return [Reason("country_hop", RULE, f"{previous.country} → {tx.country} within "
                       f"{minutes} min", r.weight, r.flag)]

    def _shared_device(self, tx: Transaction,
                       facts: graph_checks.BatchFacts | None) -> list[Reason]:
        r = self.config.rules.shared_device
        device_id = tx.device_id or ""
        cards, users = ((len(self.device_cards.get(device_id)),
                         len(self.device_users.get(device_id))) if facts is None
                        else graph_checks.device_members(tx, facts, self.config.graph))
        if cards > r.max_cards or users > r.max_users:
            return [Reason("shared_device", RULE, f"device used by {cards} cards of {users} users",
                           r.weight, r.flag)]
        return []

    def learn(self, tx: Transaction, flagged: bool) -> None:
        """Fold a decided transaction into the user's profile (history count, maximum
        amount, devices, countries, last country).  A flagged (review/block)
        transaction is not learnt: a fraudster's device, country and amounts must not
        become the victim's normal."""
        if flagged:
            return
        user = self.users.get(tx.user_id)
        usd = to_usd(tx.amount_minor, tx.currency)
        user.count += 1
        if usd is not None and usd > user.max_usd:
            user.max_usd = usd
        user.remember(CountrySeen(tx.event_ms, tx.country))
        if len(user.countries) < SET_CAP:
            user.countries.add(tx.country)
        if tx.device_id and len(user.devices) < SET_CAP:
            user.devices.add(tx.device_id)

    def _remember_activity(self, tx: Transaction, usd: float | None,
                           card: deque[CardPayment], members: bool) -> None:
        card.append(CardPayment(tx.event_ms, tx.amount_minor,
                                usd if usd is not None else float("inf"), tx.site_id))
        # older than every window, as of the clock (an outlier's own time would empty it)
        now_ms = tx.event_ms if self.clock.now_ms is None else min(tx.event_ms,
                                                                   self.clock.now_ms)
        while card[0].event_ms < now_ms - self.horizon_ms:
            card.popleft()
        self._forget_idle_cards(now_ms)
        if not members:
            return  # the graph holds who was on the device and the IP
        rules = self.config.rules  # members only for a rule that reads them
        if tx.device_id and rules.shared_device.enabled:
            _add_capped(self.device_cards.get(tx.device_id), tx.card_id)
            _add_capped(self.device_users.get(tx.device_id), tx.user_id)
        if tx.ip_address and rules.shared_ip.enabled:
            _add_capped(self.ip_users.get(tx.ip_address), tx.user_id)

    def _forget_idle_cards(self, now_ms: int) -> None:
        """Drop the cards with no activity within the horizon, least recently seen
        first: their history would be pruned to nothing on their next payment, so
        nothing reads it again, and the table holds the cards active within the
        horizon instead of growing to its limit."""
        data, oldest = self.cards.data, now_ms - self.horizon_ms
        while data:
            history = data[next(iter(data))]
            if history and history[-1].event_ms >= oldest:
                return
            data.popitem(last=False)


def _restored_user(u: dict[str, Any]) -> UserState:
    recent = deque((CountrySeen(int(ms), str(country)) for ms, country in u["recent"]),
                   maxlen=8)
    return UserState(int(u["count"]), float(u["max_usd"]), set(u["devices"]),
                     set(u["countries"]), recent, max(recent, default=None))


def _add_capped(members: set[str], value: str) -> None:
    if len(members) < SET_CAP:
        members.add(value)


def entity_of(tx: Transaction, entity_type: str) -> str | None:
    if entity_type == "card":
        return tx.card_id
    if entity_type == "user":
        return tx.user_id
    if entity_type == "device":
        return tx.device_id
    if entity_type == "ip":
        return tx.ip_address
    return tx.site_id
