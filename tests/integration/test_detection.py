"""Each fraud scenario, streamed alone through the real daemon, is flagged with its
reason codes; a stream without fraud raises none of them.  One partition per test
keeps the decisions deterministic (user state sees the stream in one order); the
graph starts empty (the generator reuses entity ids across seeds) and is not
projected here, so these are the streaming rules and the blocklist at work."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import msgspec
import pytest

from fraudgraph import connect
from fraudgraph.settings import Settings
from graph.projection import clear_graph
from ingest.generator import Generator, GeneratorConfig
from ingest.publish import Publisher
from ingest.runs import KafkaSink, generate
from ingest.scenarios import SCENARIOS
from tests.integration.test_daemon import decisions, run_daemon, scratch

COUNT = 10_000
#: the reason codes that give each scenario away (at least one on most of its flags)
CODES = {
    "card_testing": {"card_testing"},
    "account_takeover": {"new_device_high_amount"},
    "fraud_ring": {"shared_ip", "shared_device", "blocklist_device"},
    "device_farm": {"shared_device", "blocklist_device"},
    "compromised_site": {"new_device_high_amount", "unfamiliar_country", "shared_device",
                         "blocklist_device"},
    "velocity_burst": {"velocity"},
}
#: codes that only fraud patterns raise: none of them may fire on genuine traffic
FRAUD_ONLY = {"card_testing", "shared_device", "shared_ip", "blocklist_device"}


class _Truth(msgspec.Struct):
    transaction_id: str
    scenario: str


def stream(settings: Settings, config: GeneratorConfig, labels: Path) -> dict[str, str]:
    driver = connect.neo4j(settings)
    try:
        clear_graph(driver)
    finally:
        driver.close()
    sink = KafkaSink(Publisher(settings.kafka.bootstrap), settings.topics.transactions,
                     settings.topics.labels)
    stats = generate(Generator(config), sink, labels, count=COUNT, duration=None, rate=0,
                     progress=lambda _n: None)
    assert stats.transactions == COUNT
    decoder = msgspec.json.Decoder(_Truth)
    return {t.transaction_id: t.scenario for t in map(decoder.decode, labels.open("rb"))}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_is_flagged_with_its_reasons(stack: Settings, unique: str, tmp_path: Path,
                                              scenario: str) -> None:
    settings = scratch(stack, unique, partitions=1)
    truth = stream(settings, GeneratorConfig(seed=101, users=2000, sites=300, fraud_rate=0.04,
                                             mix={scenario: 1.0}), tmp_path / "labels.jsonl")
    assert len(truth) >= 60 and set(truth.values()) == {scenario}
    run_daemon(settings, unique, COUNT)
    got = decisions(settings)
    assert len(got) == COUNT
    fraud = [got[t] for t in truth]
    flagged = [d for d in fraud if d.decision != "allow"]
    assert len(flagged) >= 0.7 * len(fraud), f"recall {len(flagged) / len(fraud):.2f}"
    telling = [d for d in flagged if CODES[scenario] & {r.code for r in d.reasons}]
    assert len(telling) >= 0.8 * len(flagged)
    blocked_genuine = [d for t, d in got.items() if t not in truth and d.decision == "block"]
    assert len(blocked_genuine) <= 0.001 * COUNT  # travel on a new device, at most 0.1%


def test_control_stream_without_fraud_raises_no_fraud_pattern(stack: Settings, unique: str,
                                                             tmp_path: Path) -> None:
    settings = scratch(stack, unique, partitions=1)
    truth = stream(settings, GeneratorConfig(seed=101, users=2000, sites=300, fraud_rate=0.0),
                   tmp_path / "labels.jsonl")
    assert truth == {}
    run_daemon(settings, unique, COUNT)
    got = decisions(settings)
    assert len(got) == COUNT
    outcomes = Counter(d.decision for d in got.values())
    assert outcomes["block"] <= 0.001 * COUNT  # travel on a new device, at most 0.1%
    codes = Counter(r.code for d in got.values() for r in d.reasons)
    assert not FRAUD_ONLY & set(codes), codes
    assert codes["velocity"] <= 0.0005 * COUNT  # three genuine purchases within 10 minutes
    # reviews (new device + high amount, spikes, travel): 3.2% on this small population
    assert outcomes["review"] <= 0.04 * COUNT
