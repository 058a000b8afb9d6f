"""The generator: deterministic, calibrated, each scenario's behaviour really present, and
genuine traffic noisy enough that sharing, travel, micro-payments, bursts and reissues
are not fraud's alone.  Scenarios are found through their labels (the scenario yielded
beside each transaction), never through an id."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import msgspec
import networkx as nx
import pytest

from ingest import scenarios
from ingest.generator import Generator, GeneratorConfig, label_for, report_ms
from ingest.iso import PER_USD
from ingest.runs import FileSink, KafkaSink, generate
from ingest.transaction import Transaction, decode, encode

SMALL = dict(users=3000, sites=400)
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
Rows = list[tuple[Transaction, str | None]]


def take(config: GeneratorConfig, count: int) -> Rows:
    return list(itertools.islice(Generator(config), count))


@pytest.fixture(scope="module")
def stream() -> tuple[Generator, Rows]:
    generator = Generator(GeneratorConfig(seed=11, fraud_rate=0.03, **SMALL))
    return generator, list(itertools.islice(generator, 120_000))


def usd(tx: Transaction) -> float:
    return tx.amount / PER_USD[tx.currency]


def ms(iso: str) -> int:
    return round(datetime.fromisoformat(iso).timestamp() * 1000)


def sessions(rows: Rows, scenario: str | None, key, gap_ms: int) -> list[list[Transaction]]:  # type: ignore[no-untyped-def]
    """A scenario's transactions grouped by ``key(tx)``, split where ``gap_ms`` passes
    without one (its episodes), each in stream order."""
    groups: dict[object, list[list[Transaction]]] = defaultdict(list)
    for tx, s in rows:
        if s == scenario:
            runs = groups[key(tx)]
            if not runs or tx.event_ms - runs[-1][-1].event_ms > gap_ms:
                runs.append([])
            runs[-1].append(tx)
    return [run for runs in groups.values() for run in runs]


def complete(rows: Rows, episodes: list[list[Transaction]], margin_ms: int):  # type: ignore[no-untyped-def]
    """The episodes that ended ``margin_ms`` before the stream did (not cut off)."""
    end = rows[-1][0].event_ms
    return [e for e in episodes if e[-1].event_ms < end - margin_ms]


def genuine_history(rows: Rows):  # type: ignore[no-untyped-def]
    """Per fraudulent transaction: the user's genuine maximum (USD) and devices before it."""
    max_usd: dict[str, float] = defaultdict(float)
    devices: dict[str, set[str | None]] = defaultdict(set)
    for tx, scenario in rows:
        if scenario is None:
            max_usd[tx.user_id] = max(max_usd[tx.user_id], usd(tx))
            devices[tx.user_id].add(tx.device_id)
        else:
            yield tx, scenario, max_usd[tx.user_id], set(devices[tx.user_id])


# -- determinism and calibration ---------------------------------------------------------


def test_same_seed_gives_byte_identical_output(tmp_path: Path) -> None:
    paths = []
    for run in ("a", "b"):
        out, labels = tmp_path / f"{run}.jsonl", tmp_path / f"{run}.labels.jsonl"
        generate(Generator(GeneratorConfig(seed=5, **SMALL)), FileSink(out), labels,
                 count=30_000, duration=None, rate=0, progress=lambda _n: None)
        paths.append((out.read_bytes(), labels.read_bytes()))
    assert paths[0] == paths[1]
    assert paths[0][0].count(b"\n") == 30_000 and paths[0][1]
    other = b"".join(encode(tx) + b"\n" for tx, _ in take(GeneratorConfig(seed=6, **SMALL),
                                                          30_000))
    assert other != paths[0][0]


def test_stream_is_ordered_unique_and_valid(stream) -> None:  # type: ignore[no-untyped-def]
    _, rows = stream
    times = [tx.event_ms for tx, _ in rows]
    assert times == sorted(times)
    assert len({tx.transaction_id for tx, _ in rows}) == len(rows)
    for tx, _ in rows[:20_000]:
        assert decode(encode(tx)) == tx


def test_default_fraud_rate_and_mix_are_within_tolerance() -> None:
    rows = take(GeneratorConfig(seed=3, fraud_rate=0.05, **SMALL), 100_000)
    by_scenario = Counter(s for _, s in rows if s)
    fraud = sum(by_scenario.values())
    assert 0.04 <= fraud / len(rows) <= 0.06, fraud / len(rows)
    for name, share in scenarios.DEFAULT_MIX.items():
        assert abs(by_scenario[name] / fraud - share) <= 0.07, (name, by_scenario[name] / fraud)


def test_configured_mix_and_rate_are_followed() -> None:
    mix = dict.fromkeys(scenarios.SCENARIOS, 0.0) | {"card_testing": 0.5, "device_farm": 0.5}
    rows = take(GeneratorConfig(seed=4, fraud_rate=0.02, mix=mix, **SMALL), 80_000)
    by_scenario = Counter(s for _, s in rows if s)
    assert set(by_scenario) == {"card_testing", "device_farm"}
    assert 0.015 <= sum(by_scenario.values()) / len(rows) <= 0.025
    assert not [s for _, s in take(GeneratorConfig(seed=4, fraud_rate=0.0, **SMALL), 20_000)
                if s]


# -- each scenario's behaviour, found through its labels ---------------------------------


def test_card_testing_is_bursts_of_micro_payments_in_the_cards_currency(stream) -> None:  # type: ignore[no-untyped-def]
    generator, rows = stream
    users = generator.population.by_id
    bursts = complete(rows, sessions(rows, "card_testing", lambda tx: tx.card_id, HOUR_MS),
                      HOUR_MS)
    assert len(bursts) >= 10
    genuine_devices = {tx.device_id for tx, s in rows if s is None}
    for burst in bursts:
        assert len(burst) >= 6
        assert len({tx.device_id for tx in burst}) == 1
        assert burst[0].device_id not in users[burst[0].user_id].devices
        assert burst[0].device_id not in genuine_devices
        # micro amounts (verification or app-store price points) in the card's currency
        assert all(usd(tx) <= 5.0 and tx.currency == users[tx.user_id].currency
                   for tx in burst)
        assert len({tx.site_id for tx in burst}) >= 3
        assert burst[-1].event_ms - burst[0].event_ms <= 30 * MINUTE_MS
    amounts = Counter(tx.amount for burst in bursts for tx in burst)
    assert amounts[0.01] and amounts[1.0]  # verification amounts genuine merchants use too


def test_account_takeover_is_a_new_device_at_home_above_history(stream) -> None:  # type: ignore[no-untyped-def]
    generator, rows = stream
    users = generator.population.by_id
    genuine: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for tx, s in rows:
        if s is None:
            genuine[tx.user_id].append((tx.event_ms, usd(tx)))

    def history_max(user_id: str, before_ms: int) -> float:
        return max((u for t, u in genuine[user_id] if t < before_ms), default=0.0)

    takeovers = sessions(rows, "account_takeover", lambda tx: tx.card_id, 4 * HOUR_MS)
    assert len(takeovers) >= 10
    genuine_devices = {tx.device_id for tx, s in rows if s is None}
    for episode in takeovers:
        first = episode[0].event_ms
        # it starts at most 40 minutes before its first purchase: history until then is
        # known to the fraudster, and what came later cannot be more than 3x below
        surely_known = history_max(episode[0].user_id, first - 40 * MINUTE_MS)
        at_most = history_max(episode[0].user_id, first)
        assert len({tx.device_id for tx in episode}) == 1
        for tx in episode:
            user = users[tx.user_id]
            assert tx.device_id is not None and tx.device_id not in genuine_devices
            assert tx.country == user.country and tx.currency == user.currency
            # above the user's history, but not absurdly (at most 3x, with a 40 USD floor)
            assert surely_known < usd(tx) <= 3.0 * max(at_most, 40.0) * 1.01


def test_fraud_ring_is_new_accounts_sharing_devices_and_passing_cards_around(stream) -> None:  # type: ignore[no-untyped-def]
    generator, rows = stream
    ring = [tx for tx, s in rows if s == "fraud_ring"]
    graph = nx.Graph()
    for tx in ring:
        graph.add_edge(("user", tx.user_id), ("device", tx.device_id))
        graph.add_edge(("user", tx.user_id), ("card", tx.card_id))
    groups = [g for g in nx.connected_components(graph)
              if sum(n[0] == "user" for n in g) >= 4]
    assert len(groups) >= 3
    for group in groups:
        members = {n[1] for n in group if n[0] == "user"}
        txs = [tx for tx in ring if tx.user_id in members]
        holders: dict[str, set[str]] = defaultdict(set)
        users_of: dict[str | None, set[str]] = defaultdict(set)
        for tx in txs:
            holders[tx.card_id].add(tx.user_id)
            users_of[tx.device_id].add(tx.user_id)
        assert max(len(h) for h in holders.values()) >= 2  # a card used by several members
        assert max(len(u) for u in users_of.values()) >= 2  # a device shared by members
    # synthetic accounts: never in genuine traffic, ids like the genuine sign-ups'
    genuine_users = {tx.user_id for tx, s in rows if s is None}
    ring_users = {tx.user_id for tx in ring}
    assert not ring_users & genuine_users
    signups = generator.population.users[generator.config.users:]
    assert signups and {(u[0], len(u)) for u in ring_users} == {
        (u.user_id[0], len(u.user_id)) for u in signups}


def test_device_farm_rotates_devices_over_many_cards_in_the_victims_currency(stream) -> None:  # type: ignore[no-untyped-def]
    generator, rows = stream
    users = generator.population.by_id
    farms = complete(rows, sessions(rows, "device_farm", lambda tx: "farm", 30 * MINUTE_MS),
                     HOUR_MS)
    assert len(farms) >= 3
    for farm in farms:
        devices: dict[str | None, list[Transaction]] = defaultdict(list)
        for tx in farm:
            devices[tx.device_id].append(tx)
            assert tx.currency == users[tx.user_id].currency
            assert tx.country == users[tx.user_id].country
        assert len({tx.card_id for tx in farm}) >= 15
        assert len({tx.user_id for tx in farm}) >= 15
        assert len(devices) >= 3  # rotating devices
        for used in devices.values():  # each for a handful of cards, within the hour
            assert len({tx.card_id for tx in used}) <= 8
            assert used[-1].event_ms - used[0].event_ms <= HOUR_MS
        per_device = [len({tx.card_id for tx in used}) for used in devices.values()]
        assert sum(per_device) / len(per_device) >= 3


def test_compromised_site_exposes_cards_that_are_misused_later(stream) -> None:  # type: ignore[no-untyped-def]
    generator, rows = stream
    closed = list(generator.compromise_windows)
    assert len(closed) >= 3
    still_open = [(site, first, rows[-1][0].event_ms)
                  for site, (_, first) in generator.compromised.items()]
    exposed: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for site_id, first_ms, last_ms in closed + still_open:
        # the skimmed purchases are the card holders' own: genuine
        inside = [tx for tx, s in rows if tx.site_id == site_id and s is None
                  and first_ms <= tx.event_ms <= last_ms]
        if (site_id, first_ms, last_ms) in closed:
            assert len(inside) >= scenarios.COMPROMISE_SIZE[0]
        for tx in inside:
            exposed[tx.card_id].append((tx.event_ms, site_id))
    misuses = [tx for tx, s in rows if s == "compromised_site"]
    assert len(misuses) >= 10
    devices = {tx.user_id: set() for tx in misuses}
    for tx, s in rows:
        if s is None and tx.user_id in devices:
            devices[tx.user_id].add(tx.device_id)
    for tx in misuses:  # later, elsewhere, not from the holder's devices
        assert any(tx.event_ms >= when + DAY_MS and tx.site_id != site
                   for when, site in exposed[tx.card_id])
        assert tx.card_present or tx.device_id not in devices[tx.user_id]
    assert any(tx.card_present for tx in misuses)  # counterfeit cards, in person
    assert any(not tx.card_present for tx in misuses)


def test_velocity_burst_is_many_distinct_amounts_within_minutes(stream) -> None:  # type: ignore[no-untyped-def]
    _, rows = stream
    bursts = complete(rows, sessions(rows, "velocity_burst", lambda tx: tx.card_id, HOUR_MS),
                      HOUR_MS)
    assert len(bursts) >= 10
    for burst in bursts:
        assert len(burst) >= 5
        assert burst[-1].event_ms - burst[0].event_ms <= 15 * MINUTE_MS
        assert len({tx.amount_minor for tx in burst}) >= len(burst) - 1


def test_fraud_uses_the_genuine_spaces(stream) -> None:  # type: ignore[no-untyped-def]
    """Countries, currencies, id formats and address blocks of fraud all occur in genuine
    traffic too."""
    _, rows = stream
    genuine = [tx for tx, s in rows if s is None]
    fraud = [tx for tx, s in rows if s is not None]

    def shape(text: str | None) -> tuple[str, int] | None:
        return None if text is None else (text[0], len(text))

    for view in (lambda tx: tx.country, lambda tx: tx.currency,
                 lambda tx: shape(tx.card_id), lambda tx: shape(tx.user_id),
                 lambda tx: shape(tx.device_id),
                 lambda tx: tx.ip_address and tx.ip_address.split(".")[0]):
        assert {view(tx) for tx in fraud} <= {view(tx) for tx in genuine}


# -- labels ------------------------------------------------------------------------------


def test_labels_arrive_between_half_and_three_times_the_delay(stream) -> None:  # type: ignore[no-untyped-def]
    _, rows = stream
    delay = 2 * DAY_MS
    fraud = [(tx, s) for tx, s in rows if s]
    factors = []
    for tx, scenario in fraud:
        label = label_for(tx, scenario, delay)
        assert label.transaction_id == tx.transaction_id and label.scenario == scenario
        assert label.label == "fraud" and label.event_time == tx.timestamp
        assert label == label_for(tx, scenario, delay)  # a fixed function of the transaction
        assert ms(label.reported_at) == report_ms(tx, delay)
        factors.append((ms(label.reported_at) - tx.event_ms) / delay)
    assert min(factors) >= 0.5 and max(factors) <= 3.0
    assert min(factors) < 0.6 and max(factors) > 2.5  # chargebacks arrive unevenly
    assert 0.9 <= sorted(factors)[len(factors) // 2] <= 1.4


class _Recorder:
    """A stand-in publisher that keeps what is sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.sent.append((topic, value))

    def flush(self) -> None:
        pass


def test_labels_are_published_in_report_order_once_reported(tmp_path: Path) -> None:
    recorder = _Recorder()
    sink = KafkaSink(recorder, "tx", "labels")  # type: ignore[arg-type]
    config = GeneratorConfig(seed=8, fraud_rate=0.05, label_delay_ms=DAY_MS, **SMALL)
    stats = generate(Generator(config), sink, tmp_path / "labels.jsonl", count=40_000,
                     duration=None, rate=0, progress=lambda _n: None)
    assert stats.labels_published == stats.labels > 0
    last_tx = max(i for i, (topic, _) in enumerate(recorder.sent) if topic == "tx")
    now, reported = 0, []
    for i, (topic, value) in enumerate(recorder.sent):
        if topic == "tx":
            now = decode(value).event_ms
            continue
        at = ms(msgspec.json.decode(value)["reported_at"])
        assert i > last_tx or at <= now  # published once event time passes it, else at the end
        reported.append(at)
    assert reported == sorted(reported)
    assert sum(i < last_tx for i, (topic, _) in enumerate(recorder.sent) if topic == "labels")


# -- genuine noise -----------------------------------------------------------------------


def test_genuine_users_share_devices_and_addresses(stream) -> None:  # type: ignore[no-untyped-def]
    _, rows = stream
    device_users: dict[str, set[str]] = defaultdict(set)
    ip_users: dict[str, set[str]] = defaultdict(set)
    card_users: dict[str, set[str]] = defaultdict(set)
    for tx, s in rows:
        if s is None:
            card_users[tx.card_id].add(tx.user_id)
            if tx.device_id:
                device_users[tx.device_id].add(tx.user_id)
            if tx.ip_address:
                ip_users[tx.ip_address].add(tx.user_id)
    shared_devices = Counter(min(len(u), 6) for u in device_users.values())
    assert sum(n for k, n in shared_devices.items() if 2 <= k <= 5) >= 100  # households
    assert shared_devices[6] >= 3  # office PCs and kiosks
    assert max(len(u) for u in ip_users.values()) >= 100  # carrier-grade NAT, public Wi-Fi
    assert sum(2 <= len(u) <= 5 for u in ip_users.values()) >= 100  # household addresses
    assert sum(len(u) == 2 for u in card_users.values()) >= 50  # second holders


def test_genuine_travel_reaches_every_fraud_base(stream) -> None:  # type: ignore[no-untyped-def]
    generator, rows = stream
    users = generator.population.by_id
    abroad = [tx for tx, s in rows if s is None and tx.country != users[tx.user_id].country]
    assert 0.01 <= len(abroad) / len(rows) <= 0.06
    where = Counter((tx.country, tx.card_present) for tx in abroad)
    for country in scenarios.FRAUD_BASES:
        assert where[(country, True)] and where[(country, False)], country


def test_genuine_micro_payments_bursts_and_large_purchases(stream) -> None:  # type: ignore[no-untyped-def]
    generator, rows = stream
    users = generator.population.by_id
    genuine = [tx for tx, s in rows if s is None]
    micro = [tx for tx in genuine if tx.amount <= 1.0]
    assert len(micro) >= 0.005 * len(genuine)
    assert {0.01, 1.0} <= {tx.amount for tx in micro}
    assert len({tx.currency for tx in micro}) >= 10  # in local currencies
    assert all(tx.currency == users[tx.user_id].currency for tx in micro if not tx.card_present)
    by_card: dict[str, list[int]] = defaultdict(list)
    for tx in genuine:
        by_card[tx.card_id].append(tx.event_ms)
    bursts = sum(any(t[i + 2] - t[i] <= 10 * MINUTE_MS for i in range(len(t) - 2))
                 for t in by_card.values())
    assert bursts >= 50
    history: dict[str, list[float]] = defaultdict(list)
    large = 0
    for tx in genuine:
        seen = history[tx.user_id]
        large += len(seen) >= 5 and usd(tx) > 4 * max(seen)
        seen.append(usd(tx))
    assert large >= 20


def test_genuine_cards_are_reissued_and_phones_replaced(stream) -> None:  # type: ignore[no-untyped-def]
    generator, rows = stream
    population = generator.population
    renewals = [r for r in population.reissues if r.cause == "renewal"]
    after_fraud = [r for r in population.reissues if r.cause == "fraud"]
    assert len(renewals) >= 50 and after_fraud
    genuine_use: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for tx, s in rows:
        if s is None:
            genuine_use[tx.card_id].append((tx.event_ms, tx.user_id))
    for r in renewals:  # the holders move to the new card, in the normal format
        assert len(r.new) == len(r.old) and r.new[0] == r.old[0]
        assert all(t <= r.due_ms + HOUR_MS for t, _ in genuine_use[r.old])
    assert sum(bool(genuine_use[r.new]) for r in renewals) >= 0.5 * len(renewals)
    # after fraud, the card is replaced at a random delay after the report
    delay = generator.config.label_delay_ms
    first_report: dict[str, int] = {}
    for tx, s in rows:
        if s is not None:
            first_report[tx.card_id] = min(first_report.get(tx.card_id, 2**62),
                                           report_ms(tx, delay))
    waits = [r.due_ms - first_report[r.old] for r in after_fraud]
    assert min(waits) >= 0 and len(set(waits)) > 1
    changes = population.phone_changes
    assert len(changes) >= 20
    used = {(tx.user_id, tx.device_id) for tx, s in rows if s is None}
    assert sum((c.user_id, c.new) in used for c in changes) >= 0.5 * len(changes)


def test_new_users_sign_up_over_time(stream) -> None:  # type: ignore[no-untyped-def]
    generator, rows = stream
    newcomers = {u.user_id for u in generator.population.users[generator.config.users:]}
    assert len(newcomers) >= 100
    seen = {tx.user_id for tx, s in rows if s is None}
    assert len(newcomers & seen) >= 0.9 * len(newcomers)


def test_an_id_prefix_gives_a_second_population_and_changes_nothing_else() -> None:
    plain = [tx for tx, _ in itertools.islice(Generator(GeneratorConfig(seed=7)), 3000)]
    other = [tx for tx, _ in itertools.islice(
        Generator(GeneratorConfig(seed=7, id_prefix="w2")), 3000)]
    for a, b in zip(plain, other, strict=True):
        assert (b.user_id, b.card_id) == ("w2" + a.user_id, "w2" + a.card_id)
        assert b.device_id == (None if a.device_id is None else "w2" + a.device_id)
        assert (b.site_id, b.ip_address, b.amount_minor, b.event_ms) == (
            a.site_id, a.ip_address, a.amount_minor, a.event_ms)


def test_bad_configuration_is_refused() -> None:
    for prefix in ("w-", "w" * 9, "ü"):
        with pytest.raises(ValueError, match="id prefix"):
            GeneratorConfig(id_prefix=prefix)
    with pytest.raises(ValueError, match="unknown scenario"):
        GeneratorConfig(mix={"phishing": 1.0})
    with pytest.raises(ValueError, match="fraud rate"):
        GeneratorConfig(fraud_rate=0.9)
