"""The detector daemon against the real stack: decisions on the topics, PostgreSQL rows,
Neo4j marks.  Every test uses its own topics, consumer group, PostgreSQL schema (its
own blocklist) and entity ids."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from array import array
from collections import Counter
from typing import Any

import msgspec
import pytest

from detectors import config as detector_config
from detectors.blocklist import FlaggedTransaction, NewEntry
from detectors.decision import DecisionRecord
from detectors.features import INDEX, NAMES, SCHEMA_VERSION, TrainingRecord
from fraudgraph import connect
from fraudgraph.blocking import Blocker
from fraudgraph.metrics import DETECTOR_REJECTED as REGISTRY_REJECTED
from fraudgraph.settings import Settings
from fraudgraph.stream import annotator, daemon, projector
from fraudgraph.stream.health import Health
from graph import detect
from graph.projection import detail_row
from ingest import kafka
from ingest.dlq import DLQ_DECODER
from ingest.publish import Publisher
from ingest.transaction import DecoderConfig, Transaction, encode
from tests.integration.cli_helpers import run_cli
from tests.integration.test_projection import run_projector

T0 = 1_767_225_600_000
MIN = 60_000
DECISION = msgspec.json.Decoder(DecisionRecord)


def scratch(settings: Settings, unique: str, partitions: int = 2) -> Settings:
    topics = {name: f"test-daemon-{unique}-{name}" for name in
              ("transactions", "decisions", "alerts", "training", "labels", "dlq")}
    settings = dataclasses.replace(
        settings, topics=dataclasses.replace(settings.topics, **topics),
        postgres=dataclasses.replace(settings.postgres, schema=f"test_daemon_{unique}"))
    kafka.ensure_topics(settings.kafka.bootstrap, settings.topics.all(), partitions)
    return settings


def tx(unique: str, n: int, minute: float, card: str = "a", amount_minor: int = 2500,
       device: str = "home") -> Transaction:
    return Transaction(transaction_id=f"{unique}-t{n}", event_ms=T0 + round(minute * MIN),
                       amount_minor=amount_minor, currency="USD", card_id=f"{unique}-{card}",
                       user_id=f"{unique}-u{card}", site_id=f"{unique}-site",
                       country="US", device_id=f"{unique}-{device}{card}",
                       ip_address=f"ip-{unique}-{card}")


def run_daemon(settings: Settings, unique: str, messages: int | None,
               config: detector_config.DetectorConfig | None = None) -> daemon.DaemonStats:
    """Project what the topic holds (the daemon reads the graph as of each transaction's
    time, once it holds that time), then decide, waiting for the graph as long as it
    takes (the decisions do not depend on timing)."""
    run_projector(settings, f"test-projection-{unique}")
    options = daemon.DaemonOptions(group=f"test-daemon-{unique}", batch_size=500,
                                   until_idle=3.0, max_messages=messages, graph_wait=None)
    return daemon.run(settings, config or detector_config.load("default"), options,
                      DecoderConfig(), stop=threading.Event())


def decisions(settings: Settings) -> dict[str, DecisionRecord]:
    records = [DECISION.decode(m.value()) for m in
               kafka.read_all(settings.kafka.bootstrap, settings.topics.decisions, timeout=20)]
    keys = Counter(r.transaction_id for r in records)
    assert max(keys.values(), default=1) == 1, "a transaction was decided twice"
    return {r.transaction_id: r for r in records}


def produce(settings: Settings, items: list[bytes], topic: str | None = None) -> None:
    """Send with one key, so the records keep their order (one partition)."""
    out = Publisher(settings.kafka.bootstrap)
    for value in items:
        out.send(topic or settings.topics.transactions, b"k", value)
    out.flush()


def test_blocklisted_card_is_blocked_and_every_transaction_has_one_decision(
        stack: Settings, unique: str) -> None:
    settings = scratch(stack, unique)
    store = connect.blocklist(settings)
    try:
        store.upsert([NewEntry("card", f"{unique}-stolen", "reported stolen", "manual", 1.0, {},
                               3600)], actor="test")
        txs = [tx(unique, i, i * 30, card="ok") for i in range(5)]
        txs += [tx(unique, 10, 1, card="stolen")]
        produce(settings, [encode(t) for t in txs] + [b'{"not": "a transaction"}'])
        stats = run_daemon(settings, unique, 7)
        got = decisions(settings)
        assert set(got) == {t.transaction_id for t in txs}
        blocked = got[f"{unique}-t10"]
        assert blocked.decision == "block" and blocked.score == 1.0
        assert [r.code for r in blocked.reasons] == ["blocklist_card"]
        assert {got[f"{unique}-t{i}"].decision for i in range(5)} == {"allow"}
        # an alert says how to open its evidence; an allow decision carries nothing extra
        assert blocked.evidence == ("fraudgraph query run explain_decision "
                                    f"-p transaction_id={unique}-t10")
        assert {got[f"{unique}-t{i}"].evidence for i in range(5)} == {None}
        assert stats.rejected == 1 and stats.outcomes == Counter(allow=5, block=1)
        alerts = kafka.read_all(settings.kafka.bootstrap, settings.topics.alerts, timeout=20)
        training = kafka.read_all(settings.kafka.bootstrap, settings.topics.training, timeout=20)
        assert [m.key() for m in alerts] == [f"{unique}-t10".encode()]
        # every decision's feature vector, keyed by transaction id
        vectors = {m.key().decode(): msgspec.json.decode(m.value(), type=TrainingRecord)
                   for m in training}
        assert set(vectors) == set(got)
        assert {(v.schema, len(v.vector)) for v in vectors.values()} == {
            (SCHEMA_VERSION, 4 * len(NAMES))}
        stolen = array("f", vectors[f"{unique}-t10"].vector)
        assert stolen[INDEX["rule_blocklist_card"]] == 1.0
        assert stolen[INDEX["amount_usd"]] == 25.0
        with store.conn.cursor() as cur:
            cur.execute("SELECT decision, reasons FROM flagged_transactions "
                        "WHERE transaction_id = %s", (f"{unique}-t10",))
            row = cur.fetchone()
        store.conn.rollback()
        assert row is not None and row[0] == "block" and row[1][0]["code"] == "blocklist_card"
    finally:
        store.close()


def test_rules_flag_a_velocity_burst_and_a_card_testing_run(stack: Settings,
                                                            unique: str) -> None:
    settings = scratch(stack, unique)
    burst = [tx(unique, i, 600 + i, card="burst", amount_minor=3000 + 700 * i)
             for i in range(5)]
    testing = [msgspec.structs.replace(tx(unique, 20 + i, 900 + i * 0.5, card="probe",
                                      amount_minor=150 + i),
                                   site_id=f"{unique}-shop{i}") for i in range(6)]
    produce(settings, [encode(t) for t in burst + testing])
    run_daemon(settings, unique, len(burst) + len(testing))
    got = decisions(settings)
    assert [got[t.transaction_id].decision for t in burst] == ["allow", "allow", "review",
                                                               "review", "review"]
    assert all("velocity" in {r.code for r in got[t.transaction_id].reasons} for t in burst[2:])
    assert [got[t.transaction_id].decision for t in testing] == ["allow", "allow", "block",
                                                                 "block", "block", "block"]
    assert all(got[t.transaction_id].reasons[0].code == "card_testing" for t in testing[2:])


def label_policy(blocklist_card: bool) -> detector_config.DetectorConfig:
    config = detector_config.load("default")
    return dataclasses.replace(config, labels=dataclasses.replace(
        config.labels, blocklist_card=blocklist_card))


def test_fraud_label_counts_from_its_report_time_blocklists_the_card_and_marks_the_graph(
        stack: Settings, unique: str) -> None:
    """The preset's label policy on (``labels.blocklist_card``): the card is blocked
    from the report time on; the learned model's features see the fraud from then on,
    and never before."""
    settings = scratch(stack, unique, partitions=1)
    first = tx(unique, 1, 0, card="victim")  # Jan 1; the label is reported on Jan 3
    before = tx(unique, 2, 24 * 60, card="victim")  # Jan 2: the label is not known yet
    later = tx(unique, 3, 5 * 24 * 60, card="victim")  # Jan 6
    reported_ms = T0 + 2 * 24 * 60 * MIN
    driver = connect.neo4j(settings)
    store = connect.blocklist(settings)
    try:
        label = {"transaction_id": first.transaction_id, "label": "fraud", "source": "chargeback",
                 "reported_at": "2026-01-03T00:00:00Z"}
        produce(settings, [msgspec.json.encode(label)], settings.topics.labels)
        produce(settings, [encode(t) for t in (first, before, later)])
        # until idle: the labels group joins too
        stats = run_daemon(settings, unique, None, label_policy(True))
        assert stats.labels == 1
        got = decisions(settings)
        known = card_frauds_known(settings)
        assert (known[before.transaction_id], known[later.transaction_id]) == (0.0, 1.0)
        assert "blocklist_card" not in {r.code for r in got[before.transaction_id].reasons}
        assert got[before.transaction_id].decision == "allow"
        assert got[later.transaction_id].decision == "block"
        assert got[later.transaction_id].reasons[0].code == "blocklist_card"
        entry = store.get("card", first.card_id)
        assert entry is not None and entry.source == "label" and entry.reason == "confirmed_fraud"
        assert entry.evidence["since_ms"] == reported_ms + 2_000  # + graph.as_of_lag
        records, _, _ = driver.execute_query(
            "MATCH (c:Card {id: $card}) MATCH (s:Site {id: $site}) "
            "MATCH (l:FraudLabel {id: $tx}) "
            "RETURN c.fraud_confirmed_ms AS card, c.fraud_reported_ms AS reported, "
            "c.blocked AS blocked, s.fraud_count AS site, l.site_id AS label_site, "
            "l.reported_ms AS label_reported",
            card=first.card_id, site=first.site_id, tx=first.transaction_id)
        assert dict(records[0]) == {"card": first.event_ms, "reported": reported_ms,
                                    "blocked": True, "site": 1, "label_site": first.site_id,
                                    "label_reported": reported_ms}
        # replaying the label changes nothing (one FraudLabel per transaction)
        produce(settings, [msgspec.json.encode(label)], settings.topics.labels)
        run_daemon(settings, unique, None, label_policy(True))
        records, _, _ = driver.execute_query("MATCH (s:Site {id: $site}) RETURN s.fraud_count "
                                             "AS n", site=first.site_id)
        assert records[0]["n"] == 1
    finally:
        store.close()
        driver.close()


def card_frauds_known(settings: Settings) -> dict[str, float]:
    """Per transaction, the card's confirmed frauds its logged vector saw."""
    return {m.key().decode(): array("f", msgspec.json.decode(
        m.value(), type=TrainingRecord).vector)[INDEX["card_frauds_known"]]
        for m in kafka.read_all(settings.kafka.bootstrap, settings.topics.training)}


def test_by_default_a_fraud_label_raises_the_features_and_blocklists_nothing(
        stack: Settings, unique: str) -> None:
    """The default label policy: no blocklist entry, so a later genuine payment on the
    card (an issuer that does not reissue) is not blocked by it; the vectors of the
    card's transactions after the report count the fraud, those before do not."""
    settings = scratch(stack, unique, partitions=1)
    first = tx(unique, 1, 0, card="victim")
    before = tx(unique, 2, 24 * 60, card="victim")
    later = tx(unique, 3, 5 * 24 * 60, card="victim")
    store = connect.blocklist(settings)
    try:
        label = {"transaction_id": first.transaction_id, "label": "fraud", "source": "chargeback",
                 "reported_at": "2026-01-03T00:00:00Z"}
        produce(settings, [msgspec.json.encode(label)], settings.topics.labels)
        produce(settings, [encode(t) for t in (first, before, later)])
        assert run_daemon(settings, unique, None).labels == 1
        got = decisions(settings)
        assert got[later.transaction_id].decision == "allow"
        assert store.get("card", first.card_id) is None
        assert store.fraud_reports() == {first.transaction_id: T0 + 2 * 24 * 60 * MIN}
        known = card_frauds_known(settings)
        assert (known[first.transaction_id], known[before.transaction_id],
                known[later.transaction_id]) == (0.0, 0.0, 1.0)
    finally:
        store.close()


@pytest.mark.parametrize("ref", ["default", "legacy"])
def test_presets_load(ref: str) -> None:
    assert detector_config.load(ref).name == ref


def wait_for_decision(settings: Settings, transaction_id: str, timeout: float = 20.0
                      ) -> DecisionRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = decisions(settings)
        if transaction_id in got:
            return got[transaction_id]
        time.sleep(0.2)
    raise AssertionError(f"no decision for {transaction_id} within {timeout}s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_blocklist_add_from_the_cli_blocks_the_next_transaction_within_5_seconds(
        stack: Settings, unique: str) -> None:
    """Also: /metrics and /healthz of the running daemon, with bounded labels."""
    settings = scratch(stack, unique)
    stop = threading.Event()
    port = free_port()
    options = daemon.DaemonOptions(group=f"test-daemon-{unique}", metrics_port=port)
    config = detector_config.load("default")
    # a poll interval longer than the test: only the change notification can be in time
    config = dataclasses.replace(config, blocklist=dataclasses.replace(
        config.blocklist, refresh_ms=600_000))
    running = threading.Thread(target=daemon.run, args=(
        settings, config, options, DecoderConfig()), kwargs={"stop": stop})
    projecting = threading.Thread(target=projector.run, args=(
        settings, projector.ProjectorOptions(group=f"test-projection-{unique}"),
        DecoderConfig()), kwargs={"stop": stop})
    running.start()
    projecting.start()
    try:
        before, after = tx(unique, 1, 0, card="x"), tx(unique, 2, 60, card="x")
        produce(settings, [encode(before)])
        assert wait_for_decision(settings, before.transaction_id).decision == "allow"
        added = run_cli("blocklist", "add", "card", before.card_id, "--reason", "reported stolen",
                        env={"FRAUDGRAPH_POSTGRES_SCHEMA": settings.postgres.schema})
        assert added.returncode == 0, added.stderr
        listed_at = time.monotonic()
        produce(settings, [encode(after)])
        decision = wait_for_decision(settings, after.transaction_id)
        seen_after = time.monotonic() - listed_at
        assert decision.decision == "block"
        assert [r.code for r in decision.reasons] == ["blocklist_card"]
        assert "manual: reported stolen" in decision.reasons[0].detail
        assert seen_after < 5.0
        metrics_text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        for name in ('fraudgraph_detector_decisions_total{decision="block"}',
                     'fraudgraph_detector_reasons_total{code="blocklist_card"}',
                     "fraudgraph_detector_end_to_end_seconds_bucket",
                     'fraudgraph_detector_stage_seconds_bucket{le="0.005",stage="graph"}',
                     "fraudgraph_detector_batch_size_messages_bucket",
                     "fraudgraph_detector_lag_messages", "fraudgraph_detector_rejected_total",
                     'fraudgraph_detector_rule_state_keys{table="cards"}'):
            assert name in metrics_text, name
        assert unique not in metrics_text  # no card, user or transaction ids as labels
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz").read())
        assert health["status"] == "ok" and health["degraded"] == []
    finally:
        stop.set()
        running.join(timeout=30)
        projecting.join(timeout=30)


def test_hostile_stream_never_stops_and_every_bad_message_reaches_the_dlq(
        stack: Settings, unique: str) -> None:
    """10% of 2,000 messages malformed or hostile; injection-looking ids are data."""
    settings = scratch(stack, unique)
    hostile_ids = ["x'}) DETACH DELETE n //", "'; DROP TABLE blocklist; --", "$param {id: 1}"]
    good = [msgspec.structs.replace(tx(unique, i, i, card=f"c{i % 50}"),
                                    card_id=f"{unique}-{hostile_ids[i % 3]}" if i % 60 == 0
                                    else f"{unique}-c{i % 50}") for i in range(1800)]
    bad = [b"\xff\xfe\x00garbage", b'{"transaction_id": 1}', b"[]", b"",
           json.dumps({"transaction_id": "x", "amount": 1e15}).encode(),
           encode(good[0]).replace(b'"amount":25.0', b'"amount":"lots"')]
    stream: list[bytes] = []
    for i, t in enumerate(good):
        stream.append(encode(t))
        if i % 9 == 0 and len(stream) - i - 1 < 200:
            stream.append(bad[(len(stream) - i) % len(bad)])
    bad_count = len(stream) - len(good)
    assert bad_count == 200
    produce(settings, stream)
    before = sum(s.value for m in REGISTRY_REJECTED.collect() for s in m.samples
                 if s.name.endswith("_total"))
    stats = run_daemon(settings, unique, len(stream))
    got = decisions(settings)
    assert set(got) == {t.transaction_id for t in good}  # exactly one decision each
    assert stats.rejected == bad_count and stats.consumed == len(stream)
    dlq = [DLQ_DECODER.decode(m.value()) for m in
           kafka.read_all(settings.kafka.bootstrap, settings.topics.dlq)]
    # one record per bad message: the daemon owns the DLQ, the projector counts and skips
    assert len(dlq) == bad_count
    assert len({(d.source_partition, d.source_offset) for d in dlq}) == bad_count
    assert all(d.reason and d.source_topic == settings.topics.transactions for d in dlq)
    after = sum(s.value for m in REGISTRY_REJECTED.collect() for s in m.samples
                if s.name.endswith("_total"))
    assert after - before == bad_count
    hostile = [t for t in good if any(h in t.card_id for h in hostile_ids)]
    assert {got[t.transaction_id].card_id for t in hostile} == {t.card_id for t in hostile}


def test_a_start_writes_the_flagged_decisions_a_stopped_daemon_left_off_the_graph(
        stack: Settings, unique: str) -> None:
    """With flagged detail the loop commits once PostgreSQL holds a flagged
    transaction, and its worker writes the node later: a daemon stopped in between
    leaves the node unwritten.  The next start's first flush writes it from PostgreSQL's
    row, notes it there, and leaves a row decided outside the window, or one whose
    card is not in the graph, unnoted."""
    settings = scratch(stack, unique, partitions=1)
    settings = dataclasses.replace(settings, neo4j=dataclasses.replace(settings.neo4j,
                                                                       detail="flagged"))
    txs = [msgspec.structs.replace(tx(unique, i, i, card=f"c{i}"), merchant_category="5999",
                                   card_present=i == 1) for i in range(3)]
    produce(settings, [encode(t) for t in txs])
    run_projector(settings, f"test-projection-{unique}")
    now_ms = round(time.time() * 1000)
    left = [flagged_row(t, "block", now_ms) for t in txs[:2]]
    old = flagged_row(txs[2], "review", now_ms - 2 * annotator.RESUME_WINDOW_SECONDS * 1000)
    ghost = flagged_row(msgspec.structs.replace(txs[0], transaction_id=f"{unique}-ghost",
                                                card_id=f"{unique}-no-such-card"),
                        "block", now_ms)
    driver = connect.neo4j(settings)
    store = connect.blocklist(settings)
    try:
        assert store.record_flagged([*left, old, ghost]) == 4
        first = annotator.GraphAnnotator(driver, Blocker(store, driver), Health(),
                                         threading.Event(), with_detail=True)
        first.flush()
        assert first.resumed == 3  # the two and the ghost; not the old one
        records, _, _ = driver.execute_query(
            "MATCH (c:Card)-[:MADE]->(t:Transaction)-[:AT]->(:Site) "
            "WHERE t.id STARTS WITH $prefix RETURN t.id AS id, t.decision AS decision, "
            "t.reasons AS reasons, t.country AS country, t.ip_address AS ip, "
            "t.merchant_category AS category, t.card_present AS present, c.id AS card "
            "ORDER BY id", prefix=f"{unique}-")
        assert [dict(r) for r in records] == [
            {"id": t.transaction_id, "decision": "block", "reasons": ["blocklist_card"],
             "country": "US", "ip": t.ip_address, "category": "5999",
             "present": t.card_present, "card": t.card_id} for t in txs[:2]]
        assert [f.transaction_id for f in store.ungraphed(3600, 10)] == [ghost.transaction_id]
        second = annotator.GraphAnnotator(driver, Blocker(store, driver), Health(),
                                          threading.Event(), with_detail=True)
        second.flush()
        assert second.resumed == 1  # the ghost waits for its card
    finally:
        store.close()
        driver.close()


def flagged_row(t: Transaction, decision: str, decided_ms: int) -> FlaggedTransaction:
    return FlaggedTransaction(
        t.transaction_id, decision, 1.0, [{"code": "blocklist_card", "detector": "blocklist",
                                           "detail": "manual: stolen"}],
        t.card_id, t.user_id, t.site_id, t.device_id, t.amount_minor, t.currency, t.event_ms,
        decided_ms, t.country, t.ip_address, t.merchant_category, t.card_present)


def _health(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
            return dict(json.loads(answer.read()))
    except urllib.error.HTTPError as error:  # 503 while degraded, with the same body
        return dict(json.loads(error.read()))


def test_with_flagged_detail_only_flagged_transactions_get_a_node_and_labels_place_the_rest(
        stack: Settings, unique: str) -> None:
    """``FRAUDGRAPH_GRAPH_DETAIL=flagged``: the projection writes aggregates only; the
    daemon writes the blocked transaction's node with its decision, and the label of an
    allowed one (no node) marks the card and device its own ids name."""
    settings = scratch(stack, unique, partitions=1)
    settings = dataclasses.replace(settings, neo4j=dataclasses.replace(settings.neo4j,
                                                                       detail="flagged"))
    txs = [tx(unique, i, i * 30, card="ok") for i in range(5)]
    txs += [tx(unique, 10, 1, card="stolen"), tx(unique, 20, 5 * 24 * 60, card="late")]
    missed, stolen = txs[0], txs[5]
    label = {"transaction_id": missed.transaction_id, "label": "fraud", "source": "chargeback",
             "reported_at": "2026-01-03T00:00:00Z", "card_id": missed.card_id,
             "user_id": missed.user_id, "site_id": missed.site_id,
             "device_id": missed.device_id}
    driver = connect.neo4j(settings)
    store = connect.blocklist(settings)
    try:
        store.upsert([NewEntry("card", stolen.card_id, "reported stolen", "manual", 1.0, {},
                               3600)], actor="test")
        # the blocked one is confirmed fraud too: its node says so, whichever came first
        confirmed = {**label, "transaction_id": stolen.transaction_id,
                     "card_id": stolen.card_id, "user_id": stolen.user_id,
                     "site_id": stolen.site_id, "device_id": stolen.device_id}
        produce(settings, [msgspec.json.encode(x) for x in (label, confirmed)],
                settings.topics.labels)
        produce(settings, [encode(t) for t in txs])
        stats = run_daemon(settings, unique, None)  # until idle: the labels apply too
        assert stats.labels == 2
        got = decisions(settings)
        assert Counter(d.decision for d in got.values()) == Counter(allow=6, block=1)
        assert got[stolen.transaction_id].decision == "block"
        # the worker noted in PostgreSQL that the decision reached the graph
        assert store.ungraphed(3600, 10) == []
        # one Transaction node: the blocked one, with its decision, card, site and device
        nodes = "MATCH (t:Transaction) WHERE t.id STARTS WITH $prefix "
        records, _, _ = driver.execute_query(
            nodes + "OPTIONAL MATCH (c:Card)-[:MADE]->(t) OPTIONAL MATCH (t)-[:AT]->(s:Site) "
            "OPTIONAL MATCH (t)-[:ON]->(d:Device) RETURN t.id AS id, t.decision AS decision, "
            "t.reasons AS reasons, t.amount_minor AS amount, t.label AS label, "
            "collect(c.id) AS cards, collect(s.id) AS sites, collect(d.id) AS devices",
            prefix=f"{unique}-")
        assert [dict(r) for r in records] == [{
            "id": stolen.transaction_id, "decision": "block", "reasons": ["blocklist_card"],
            "amount": 2500, "label": "fraud", "cards": [stolen.card_id],
            "sites": [stolen.site_id], "devices": [stolen.device_id]}]
        # the aggregates hold all seven
        records, _, _ = driver.execute_query(
            "MATCH (u:User)-[h:HOLDS]->(:Card) WHERE u.id STARTS WITH $prefix "
            "RETURN sum(h.count) AS n", prefix=f"{unique}-")
        assert records[0]["n"] == len(txs)
        # the missed fraud, placed by the label's own ids
        records, _, _ = driver.execute_query(
            "MATCH (l:FraudLabel {id: $tx}) MATCH (c:Card {id: $card}) "
            "MATCH (d:Device {id: $device}) RETURN l.site_id AS site, "
            "c:ConfirmedFraud AS card, d:ConfirmedFraud AS device",
            tx=missed.transaction_id, card=missed.card_id, device=missed.device_id)
        assert dict(records[0]) == {"site": missed.site_id, "card": True, "device": True}
        # a replayed decision write changes nothing; one whose card is not in the graph
        # yet is not written (the annotator tries it again later)
        row = {**detail_row(stolen), "decision": "block", "score": 1.0,
               "reasons": ["blocklist_card"]}
        assert detect.record_flagged(driver, [row]) == {stolen.transaction_id}
        ghost = {**row, "id": f"{unique}-ghost", "card_id": f"{unique}-no-such-card"}
        assert detect.record_flagged(driver, [ghost]) == set()
        records, _, _ = driver.execute_query(
            nodes + "RETURN count(t) AS nodes, sum(COUNT { (t)<-[:MADE]-() }) AS made, "
            "sum(COUNT { (t)-[:AT|ON]->() }) AS links", prefix=f"{unique}-")
        assert [dict(r) for r in records] == [{"nodes": 1, "made": 1, "links": 2}]
        # a device not projected yet keeps the row waiting (no node without its link)
        early = {**row, "id": f"{unique}-early", "device_id": f"{unique}-no-such-device"}
        assert detect.record_flagged(driver, [early]) == set()
    finally:
        store.close()
        driver.close()
