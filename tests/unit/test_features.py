"""The learned model's features and the detector's model path (pure: a scorer fake
behind the detector's own Scorer protocol)."""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from detectors import checkpoint
from detectors import config as cfg
from detectors.blocklist import Entry, NewEntry
from detectors.decision import ALLOW, BLOCK, MODEL, REVIEW, Reason
from detectors.features import INDEX, MISSING, NAMES, FeatureState, KnownFraud, graph_feature
from detectors.graph_checks import BatchFacts, CardFacts
from detectors.pipeline import Detector
from tests.unit.test_detectors import MIN, T0, tx

GRAPH = cfg.GraphConfig()  # as_of_lag 2 s
HOUR = 60 * MIN


def value(row: list[float], name: str) -> float:
    return row[INDEX[name]]


def test_holder_windows_count_sum_mean_max_from_the_state_before_the_transaction() -> None:
    state = FeatureState()
    state.vector(tx(1, 0, 10.0), [], None, GRAPH)  # 2 days before the last one
    state.vector(tx(2, 47 * 60, 30.0), [], None, GRAPH)  # 1 hour before
    state.vector(tx(3, 47 * 60 + 50, 20.0), [], None, GRAPH)  # 10 minutes before
    row = state.vector(tx(4, 48 * 60, 100.0), [], None, GRAPH)
    assert len(row) == len(NAMES)
    assert value(row, "amount_usd") == 100.0
    assert [value(row, f"card_count_{w}") for w in ("1h", "1d", "7d", "30d")] == [1, 2, 3, 3]
    assert value(row, "card_sum_1d") == 50.0
    assert value(row, "card_mean_7d") == 20.0
    assert value(row, "card_max_1h") == 20.0
    assert value(row, "card_amount_vs_max_30d") == 100.0 / 30.0
    assert value(row, "card_seconds_since_previous") == 600.0
    assert value(row, "card_new_site") == 0.0 and value(row, "card_new_country") == 0.0
    first = FeatureState().vector(tx(5, 0, 10.0), [], None, GRAPH)
    assert value(first, "card_seconds_since_previous") == MISSING
    assert value(first, "card_mean_30d") == MISSING
    assert value(first, "card_new_site") == 1.0 and value(first, "card_new_device") == 1.0


def test_a_fraud_counts_only_from_its_report_time_never_earlier() -> None:
    """No vector reads a label reported after its transaction's time (minus the
    graph's as-of lag): the label's report time decides, not the fraud's own time."""
    state = FeatureState()
    for n in range(4):
        state.vector(tx(n, n, site="s9"), [], None, GRAPH)
    reported = T0 + 10 * HOUR
    state.learn_frauds([KnownFraud("t0", reported + GRAPH.as_of_lag_ms, T0, "c1", "u1",
                                   "s9", "d1")])
    at_report = tx(10, 10 * 60, site="s9")  # at the report time: the lag not yet passed
    row = state.vector(at_report, [], None, GRAPH)
    assert value(row, "card_frauds_known") == 0
    assert value(row, "site_frauds_30d") == 0
    after = tx(11, 10 * 60 + 1, site="s9")
    row = state.vector(after, [], None, GRAPH)
    assert value(row, "card_frauds_known") == 1 and value(row, "user_frauds_known") == 1
    assert value(row, "site_frauds_30d") == 1 and value(row, "device_frauds_30d") == 1
    assert value(row, "site_fraud_rate_30d") == 1 / 5  # 5 payments at s9 before it
    # a replayed label counts once
    state.learn_frauds([KnownFraud("t0", reported, T0, "c1", "u1", "s9", "d1")])
    assert value(state.vector(tx(12, 11 * 60, site="s9"), [], None, GRAPH),
                 "card_frauds_known") == 1
    # a fraud older than 30 days no longer counts at the site, still on the card
    late = state.vector(tx(13, 31 * 24 * 60, site="s9"), [], None, GRAPH)
    assert value(late, "site_frauds_30d") == 0 and value(late, "card_frauds_known") == 1


def test_graph_features_read_facts_as_of_the_transaction() -> None:
    facts = BatchFacts(cards={"c1": CardFacts((("u1", T0), ("u2", T0 + 5 * MIN)), "User u7",
                                              T0 + 3 * MIN)})
    early = FeatureState().vector(tx(1, 1), [], facts, GRAPH)
    late = FeatureState().vector(tx(2, 6), [], facts, GRAPH)
    assert value(early, "graph_card_holders") == 1 and value(early, "graph_near_fraud") == 0
    assert value(late, "graph_card_holders") == 2 and value(late, "graph_near_fraud") == 1
    assert graph_feature("graph_ring") and graph_feature("gnn_card_risk")
    assert not graph_feature("site_frauds_30d")


class FixedScorer:
    """The detector's Scorer protocol: probabilities by transaction amount."""

    version, review, block = "m-test", 0.5, 0.9

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, rows: Sequence[Sequence[float]]) -> list[float]:
        self.calls += 1
        return [min(row[INDEX["amount_usd"]] / 100.0, 1.0) for row in rows]

    def explain(self, rows: Sequence[Sequence[float]], which: Sequence[int],
                top: int) -> list[list[tuple[str, float]]]:
        return [[("amount_usd", 1.5)] for _ in which]


class Listed:
    def __init__(self, entries: dict[tuple[str, str], Entry]) -> None:
        self.entries = entries

    def hit(self, entity_type: str, entity_id: str) -> Entry | None:
        return self.entries.get((entity_type, entity_id))

    def add_local(self, entries: list[NewEntry]) -> None:
        pass

    def revoked(self, entity_type: str, entity_id: str) -> bool:
        return False


def test_the_model_decides_with_one_call_per_batch_and_certain_reasons_decide_alone() -> None:
    detector = Detector(cfg.load("default"))
    scorer = FixedScorer()
    detector.scorer = scorer
    now = datetime.now(UTC)
    card = Entry("card", "c9", "confirmed_fraud", "manual", 1.0, {}, now, now, None, None, None)
    batch = [tx(1, 0, 10.0, card="c1", user="u1"), tx(2, 1, 60.0, card="c2", user="u2"),
             tx(3, 2, 95.0, card="c3", user="u3"), tx(4, 3, 5.0, card="c9", user="u9")]
    decided, _ = detector.decide_batch(batch, None, Listed({("card", "c9"): card}), 0)
    assert scorer.calls == 1
    assert [d.verdict.decision for d in decided] == [ALLOW, REVIEW, BLOCK, BLOCK]
    assert [d.record.score for d in decided[:3]] == [0.1, 0.6, 0.95]
    assert [d.record.model_version for d in decided] == ["m-test"] * 3 + [None]
    top = decided[2].verdict.reasons[0]
    assert (top.code, top.detector) == ("model", MODEL)
    assert "amount_usd=95 (+1.50)" in top.detail
    assert decided[3].verdict.reasons[0].code == "blocklist_card"  # the rules' verdict
    # the vector the decision saw travels with it (float32)
    logged = list(array("f", decided[1].features))
    assert len(logged) == len(NAMES)
    assert value(logged, "amount_usd") == 60.0 and value(logged, "card_new_site") == 1.0
    assert value(list(array("f", decided[3].features)), "rule_blocklist_card") == 1.0


def test_model_decisions_never_change_the_state_the_vectors_are_computed_from() -> None:
    """Rules and features evolve as without a model: logged vectors do not depend on
    which model was promoted (what makes the backtest's offline ablation exact)."""
    batch = [tx(n, n * 0.5, 10.0 + 40 * (n % 3), card=f"c{n % 2}", user=f"u{n % 2}",
                country="US" if n % 4 else "FR") for n in range(12)]
    plain, modelled = Detector(cfg.load("default")), Detector(cfg.load("default"))
    modelled.scorer = FixedScorer()
    first, _ = plain.decide_batch(batch, None, Listed({}), 0)
    second, _ = modelled.decide_batch(batch, None, Listed({}), 0)
    assert [d.features for d in first] == [d.features for d in second]
    assert [d.verdict for d in first] != [d.verdict for d in second]


def test_feature_state_survives_a_checkpoint_round_trip() -> None:
    detector = Detector(cfg.load("default"))
    batch = [tx(n, n * 7.0, 5.0 + n, card=f"c{n % 3}", site=f"s{n % 2}") for n in range(20)]
    detector.decide_batch(batch, None, Listed({}), 0)
    detector.features.learn_frauds([KnownFraud("t3", T0, T0, "c0", "u1", "s1", "d1")])
    state = msgspec.msgpack.decode(checkpoint._ENCODER.encode(detector.snapshot()))
    restored = Detector(cfg.load("default"))
    restored.restore(state)
    probe = [tx(99, 200.0, 42.0, card="c1", site="s1")]
    a, _ = detector.decide_batch(probe, None, Listed({}), 0)
    b, _ = restored.decide_batch(probe, None, Listed({}), 0)
    assert a[0].features == b[0].features
    assert value(list(array("f", a[0].features)), "card_count_1d") == 7.0


def test_reason_outcomes_are_features() -> None:
    state = FeatureState()
    reasons = [Reason("velocity", "rule", "", 0.55), Reason("shared_card", "cypher", "", 0.7)]
    row = state.vector(tx(1, 0), reasons, None, GRAPH)
    assert value(row, "rule_velocity") == 1 and value(row, "graph_reason_shared_card") == 1
    assert value(row, "rule_card_testing") == 0
    assert abs(value(row, "rules_score") - 0.55) < 1e-9
    assert abs(value(row, "graph_score") - 0.7) < 1e-9



def test_with_the_model_off_no_vector_is_computed_or_logged() -> None:
    """The legacy preset is a rules engine: its decisions carry no vector, and the
    daemon writes decisions and alerts but nothing on ``training``."""
    from fraudgraph.settings import Topics
    from fraudgraph.stream.daemon import _records

    detector = Detector(cfg.load("legacy"))
    batch = [tx(1, 0, 10.0), tx(2, 1, 500.0)]  # the second: above 2x the user's maximum
    decided, _ = detector.decide_batch(batch, None, Listed({}), 0)
    assert [d.verdict.decision for d in decided] == [ALLOW, REVIEW]
    assert [d.features for d in decided] == [b"", b""]
    assert len(detector.features.history["card"]) == 0  # the feature state is not fed
    topics = Topics()
    assert [topic for topic, _, _ in _records(topics, decided)] == [
        topics.decisions, topics.decisions, topics.alerts]
    with_model, _ = Detector(cfg.load("default")).decide_batch(batch, None, Listed({}), 0)
    assert [topic for topic, _, _ in _records(topics, with_model)].count(topics.training) == 2
