"""The generator: deterministic, calibrated, and each scenario's pattern really present."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from pathlib import Path

import networkx as nx
import pytest

from ingest import scenarios
from ingest.generator import Generator, GeneratorConfig, label_for
from ingest.iso import PER_USD
from ingest.runs import FileSink, generate
from ingest.transaction import Transaction, decode, encode

SMALL = dict(users=3000, sites=400)


def take(config: GeneratorConfig, count: int) -> list[tuple[Transaction, str | None]]:
    return list(itertools.islice(Generator(config), count))


@pytest.fixture(scope="module")
def stream() -> tuple[Generator, list[tuple[Transaction, str | None]]]:
    generator = Generator(GeneratorConfig(seed=11, fraud_rate=0.03, **SMALL))
    return generator, list(itertools.islice(generator, 120_000))


def usd(tx: Transaction) -> float:
    return tx.amount / PER_USD[tx.currency]


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


def episodes(rows, scenario, key):  # type: ignore[no-untyped-def]
    """A scenario's transactions grouped by ``key(tx)`` (its episode), in stream order."""
    groups: dict[str, list[Transaction]] = defaultdict(list)
    for tx, s in rows:
        if s == scenario:
            groups[key(tx)].append(tx)
    return groups


def test_card_testing_is_bursts_of_tiny_amounts_across_sites(stream) -> None:  # type: ignore[no-untyped-def]
    _, rows = stream
    bursts = episodes(rows, "card_testing", lambda tx: tx.device_id)
    assert len(bursts) >= 10
    for burst in bursts.values():
        assert len(burst) >= 6
        assert len({tx.card_id for tx in burst}) == 1
        assert all(tx.amount <= 2.5 and tx.currency == "USD" for tx in burst)
        assert len({tx.site_id for tx in burst}) >= 3
        assert burst[-1].event_ms - burst[0].event_ms <= 30 * 60_000


def test_account_takeover_is_new_device_foreign_country_and_amount_spike(stream) -> None:  # type: ignore[no-untyped-def]
    generator, rows = stream
    users = {u.user_id: u for u in generator.population.users}
    max_genuine: dict[str, float] = defaultdict(float)
    checked = 0
    for tx, scenario in rows:
        if scenario is None:
            max_genuine[tx.user_id] = max(max_genuine[tx.user_id], usd(tx))
        elif scenario == "account_takeover":
            user = users[tx.user_id]
            assert tx.device_id not in user.devices
            assert tx.country != user.country
            assert usd(tx) > max_genuine[tx.user_id] * 2
            checked += 1
    assert checked >= 30


def test_fraud_ring_users_share_devices_and_pass_cards_around(stream) -> None:  # type: ignore[no-untyped-def]
    _, rows = stream
    rings = episodes(rows, "fraud_ring", lambda tx: tx.user_id[:7])  # "ur" + episode number
    complete = [r for r in rings.values() if len(r) >= 15]  # not cut off by the stream's end
    assert len(complete) >= 3
    for members_tx in complete:
        graph = nx.Graph()
        for tx in members_tx:
            graph.add_edge(("user", tx.user_id), ("device", tx.device_id))
            graph.add_edge(("user", tx.user_id), ("ip", tx.ip_address))
        users = {n for n in graph if n[0] == "user"}
        assert len(users) >= 4
        assert nx.is_connected(graph)  # one group, linked through shared devices / IPs
        holders = defaultdict(set)
        for tx in members_tx:
            holders[tx.card_id].add(tx.user_id)
        assert max(len(h) for h in holders.values()) >= 2  # a card used by several members


def test_device_farm_device_has_many_cards(stream) -> None:  # type: ignore[no-untyped-def]
    _, rows = stream
    farms = episodes(rows, "device_farm", lambda tx: tx.device_id)
    assert len(farms) >= 3
    for farm in farms.values():
        assert len({tx.card_id for tx in farm}) >= 15
        assert len({tx.user_id for tx in farm}) >= 15
        assert farm[-1].event_ms - farm[0].event_ms <= 6 * 3_600_000


def test_compromised_site_exposes_cards_that_are_misused_later(stream) -> None:  # type: ignore[no-untyped-def]
    generator, rows = stream
    windows = generator.compromise_windows
    assert len(windows) >= 3
    exposed: dict[str, int] = {}
    for site_id, first_ms, last_ms in windows:
        inside = [(tx, s) for tx, s in rows if tx.site_id == site_id
                  and first_ms <= tx.event_ms <= last_ms]
        assert len(inside) >= 10
        # the skimmed purchases are the card holders' own: genuine (unless another
        # scenario happens to pass by)
        assert sum(s is None for _, s in inside) >= 10
        for tx, _ in inside:
            exposed[tx.card_id] = min(exposed.get(tx.card_id, tx.event_ms), tx.event_ms)
    for site_id, (_, _, first_ms) in generator.compromised.items():  # still open at the end
        for tx, _ in rows:
            if tx.site_id == site_id and tx.event_ms >= first_ms:
                exposed[tx.card_id] = min(exposed.get(tx.card_id, tx.event_ms), tx.event_ms)
    misuses = [tx for tx, s in rows if s == "compromised_site"]
    assert len(misuses) >= 10
    for tx in misuses:  # elsewhere, later, from a fraudster's device
        assert tx.device_id is not None and tx.device_id.startswith("dxcs")
        assert tx.card_id in exposed and exposed[tx.card_id] < tx.event_ms


def test_velocity_burst_is_many_distinct_amounts_within_minutes(stream) -> None:  # type: ignore[no-untyped-def]
    _, rows = stream
    bursts = episodes(rows, "velocity_burst", lambda tx: tx.card_id)
    assert len(bursts) >= 10
    for burst in bursts.values():
        assert len(burst) >= 5
        assert burst[-1].event_ms - burst[0].event_ms <= 15 * 60_000 * (len(burst) // 12 + 1)
        assert len({tx.amount_minor for tx in burst}) >= len(burst) - 1


def test_labels_arrive_after_the_configured_delay(stream) -> None:  # type: ignore[no-untyped-def]
    _, rows = stream
    tx, scenario = next((tx, s) for tx, s in rows if s)
    label = label_for(tx, scenario, 2 * 86_400_000)
    assert label.transaction_id == tx.transaction_id and label.scenario == scenario
    assert label.label == "fraud" and label.event_time == tx.timestamp
    assert decode(encode(tx)).event_ms + 2 * 86_400_000 == int(
        __import__("datetime").datetime.fromisoformat(label.reported_at).timestamp() * 1000)


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        GeneratorConfig(mix={"phishing": 1.0})
    with pytest.raises(ValueError, match="fraud rate"):
        GeneratorConfig(fraud_rate=0.9)
