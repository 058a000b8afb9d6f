"""Streaming rules, the decision combiner, config validation and ring finding (pure)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from detectors import config as cfg
from detectors.blocklist import Entry, NewEntry
from detectors.decision import BLOCK, REVIEW, Reason, decide
from detectors.graph_checks import (
    BatchFacts,
    CardFacts,
    DeviceFacts,
    Members,
    SiteFacts,
    reasons_for,
)
from detectors.pipeline import SINCE, Detector
from detectors.quality import (
    Scored,
    at_decision,
    average_precision,
    card_precision_at_k,
    evaluate,
    measure,
    percentile,
    roc_auc,
    undecided,
)
from detectors.rings import find_rings, last_boundary, next_boundary
from detectors.rules import RuleEngine
from ingest.iso import CURRENCY_EXPONENT
from ingest.transaction import Transaction

T0 = 1_767_225_600_000  # 2026-01-01
MIN = 60_000


def tx(n: int, minute: float, amount: float = 20.0, *, card: str = "c1", user: str = "u1",
       site: str = "s1", country: str = "US", device: str | None = "d1",
       ip: str | None = "10.0.0.1", currency: str = "USD") -> Transaction:
    minor = round(amount * 10 ** CURRENCY_EXPONENT[currency])
    return Transaction(transaction_id=f"t{n}", event_ms=T0 + round(minute * MIN),
                       amount_minor=minor, currency=currency, card_id=card, user_id=user,
                       site_id=site, country=country, device_id=device,
                       ip_address=ip)


def codes(engine: RuleEngine, t: Transaction, blocked: dict[tuple[str, str], str] | None = None,
          flagged: bool = False) -> list[str]:
    reasons = engine.evaluate(t, lambda kind, key: (blocked or {}).get((kind, key)))
    engine.learn(t, flagged)
    return sorted(r.code for r in reasons)


def only(rule: str, **changes: object) -> cfg.DetectorConfig:
    """The default config with every streaming rule off except ``rule`` (changed as given)."""
    rules = cfg.DetectorConfig().rules
    off = {f.name: dataclasses.replace(getattr(rules, f.name), enabled=False)
           for f in dataclasses.fields(rules)}
    off[rule] = dataclasses.replace(getattr(rules, rule), **changes)
    return cfg.DetectorConfig(rules=dataclasses.replace(rules, **off))


def test_default_preset_file_equals_the_documented_defaults() -> None:
    assert dataclasses.replace(cfg.load("default"), name="default") == cfg.DetectorConfig()


def test_legacy_preset_is_the_three_old_rules() -> None:
    legacy = cfg.load("legacy")
    enabled = [f.name for f in dataclasses.fields(legacy.rules)
               if getattr(legacy.rules, f.name).enabled]
    assert enabled == ["blocklist_hit", "velocity", "amount_spike", "country_hop"]
    velocity = legacy.rules.velocity
    assert velocity.window_ms == 5 * MIN and velocity.min_transactions == 2
    assert legacy.rules.amount_spike.factor == 2.0 and legacy.rules.amount_spike.min_history == 1
    assert legacy.rules.country_hop.window_ms == 120 * MIN and not legacy.graph.enabled


@pytest.mark.parametrize(("text", "message"), [
    ("[decision]\nreview_treshold = 0.5", "decision.review_treshold: unknown setting"),
    ("[rules.velocity]\nwindow = 10", "rules.velocity.window: expected a duration"),
    ("[rules.velocity]\nweight = 1.5", "rules.velocity.weight: expected a number between 0 and 1"),
    ("[rules.velocity]\nmin_transactions = 0", "expected a whole number >= 1"),
    ("[blocklist]\nflag_on_block = [\"planet\"]", "expected a list of entity types"),
    ("[blocklist]\nrefresh_seconds = \"1s\"", "blocklist.refresh_seconds: expected a number >= 0"),
    ("[blocklist]\nrefresh_seconds = -1", "blocklist.refresh_seconds: expected a number >= 0"),
    ("[blocklist]\nrefresh_seconds = inf", "refresh_seconds: expected a finite number"),
    ("[blocklist]\nrefresh = \"1s\"", "blocklist.refresh: unknown setting"),
    ("[decision]\nreview_threshold = 0.9\nblock_threshold = 0.5", "review_threshold <= block"),
    ("preset = \"nope\"", "no detector config 'nope'"),
    ("[rules", "not valid TOML"),
])
def test_invalid_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(cfg.ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        cfg.load(path)


def test_every_duration_is_whole_milliseconds_and_the_toml_keeps_its_keys(
        tmp_path: Path) -> None:
    def durations(config: object, where: str = "") -> dict[str, object]:
        found: dict[str, object] = {}
        for f in dataclasses.fields(config):  # type: ignore[arg-type]
            value = getattr(config, f.name)
            if dataclasses.is_dataclass(value):
                found |= durations(value, f"{where}{f.name}.")
            elif set(f.name.split("_")) & {"ms", "seconds", "window", "every", "ttl", "lag",
                                             "refresh", "timeout", "interval"}:
                found[where + f.name] = value
        return found

    found = durations(cfg.DetectorConfig())
    assert all(name.endswith("_ms") and type(v) is int for name, v in found.items()), found
    assert found["blocklist.refresh_ms"] == 1000
    # in TOML: durations as strings without the suffix, the refresh as seconds (a number)
    path = tmp_path / "mine.toml"
    path.write_text('[blocklist]\nttl = "2d"\nrefresh_seconds = 2.5\n'
                    '[graph]\nas_of_lag = "1500ms"\n')
    loaded = cfg.load(path)
    assert (loaded.blocklist.ttl_ms, loaded.blocklist.refresh_ms) == (2 * 86_400_000, 2500)
    assert loaded.graph.as_of_lag_ms == 1500
    assert [cfg.build({"blocklist": {"refresh_seconds": v}}).blocklist.refresh_ms
            for v in (0, 2, 0.25)] == [0, 2000, 250]


def test_override_file_starts_from_a_preset(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('preset = "legacy"\n[rules.velocity]\nwindow = "90s"\n')
    loaded = cfg.load(path)
    assert loaded.name == "mine" and loaded.rules.velocity.window_ms == 90_000
    assert loaded.rules.velocity.require_different_amount  # from the legacy preset


def test_legacy_velocity_another_transaction_within_5_minutes_with_a_different_amount() -> None:
    engine = RuleEngine(cfg.load("legacy"))
    assert codes(engine, tx(1, 0, 20)) == []
    assert codes(engine, tx(2, 3, 20)) == []  # same amount: not the legacy pattern
    assert codes(engine, tx(3, 4, 35)) == ["velocity"]
    assert codes(engine, tx(4, 20, 50)) == []  # 16 minutes later


def test_legacy_amount_spike_above_twice_the_previous_maximum() -> None:
    engine = RuleEngine(cfg.load("legacy"))
    assert codes(engine, tx(1, 0, 100)) == []
    assert codes(engine, tx(2, 600, 200)) == []  # exactly 2x is not above
    assert codes(engine, tx(3, 1200, 401)) == ["amount_spike"]


def test_legacy_country_hop_within_2_hours() -> None:
    engine = RuleEngine(cfg.load("legacy"))
    assert codes(engine, tx(1, 0, country="US")) == []
    assert codes(engine, tx(2, 90, country="FR")) == ["country_hop"]
    assert codes(engine, tx(3, 400, country="DE")) == []  # > 2 h after the previous


def test_velocity_counts_the_window_in_event_time_even_out_of_order() -> None:
    engine = RuleEngine(only("velocity", min_transactions=3, window_ms=10 * MIN))
    assert codes(engine, tx(1, 0)) == []
    assert codes(engine, tx(2, 30)) == []
    assert codes(engine, tx(3, 5)) == []  # late: only t1 lies within its 10 minutes
    assert codes(engine, tx(4, 8)) == ["velocity"]  # t1, t3 and itself


def test_card_testing_needs_small_amounts_at_several_sites() -> None:
    engine = RuleEngine(only("card_testing"))
    assert codes(engine, tx(1, 0, 1.0, site="a")) == []
    assert codes(engine, tx(2, 1, 1.5, site="a")) == []
    assert codes(engine, tx(3, 2, 2.0, site="a")) == []  # one site only
    assert codes(engine, tx(4, 3, 0.9, site="b")) == ["card_testing"]
    assert codes(engine, tx(5, 4, 60.0, site="c")) == []  # not small


def test_amounts_compare_in_usd_across_currencies() -> None:
    engine = RuleEngine(only("amount_spike", min_history=1, factor=2.0))
    assert codes(engine, tx(1, 0, 100.0, currency="USD")) == []
    assert codes(engine, tx(2, 60, 15000.0, currency="JPY")) == []  # 100 USD
    assert codes(engine, tx(3, 120, 40000.0, currency="JPY")) == ["amount_spike"]  # ~267 USD


def test_new_device_high_amount_and_flagged_transactions_are_not_learnt() -> None:
    engine = RuleEngine(only("new_device_high_amount"))
    assert codes(engine, tx(1, 0, 50, device="home")) == []
    assert codes(engine, tx(2, 60, 500, device="evil"), flagged=True) == ["new_device_high_amount"]
    # the flagged use did not make "evil" one of the user's devices
    assert codes(engine, tx(3, 70, 500, device="evil")) == ["new_device_high_amount"]
    assert codes(engine, tx(4, 80, 50, device="other")) == []  # low amount


def test_unfamiliar_country_after_some_history() -> None:
    engine = RuleEngine(only("unfamiliar_country"))
    assert codes(engine, tx(1, 0, country="US")) == []  # no history yet
    assert codes(engine, tx(2, 600, country="US")) == []
    assert codes(engine, tx(3, 1200, country="RO")) == ["unfamiliar_country"]


def test_shared_device_and_shared_ip_count_distinct_members() -> None:
    engine = RuleEngine(only("shared_device", max_cards=3, max_users=9))
    for i in range(3):
        assert codes(engine, tx(i, i, card=f"c{i}", user=f"u{i}", device="farm")) == []
    assert codes(engine, tx(9, 9, card="c1", user="u1", device="farm")) == []  # seen card
    assert codes(engine, tx(10, 10, card="c9", user="u9", device="farm")) == ["shared_device"]
    engine = RuleEngine(only("shared_ip", max_users=2))
    assert [codes(engine, tx(i, i, user=f"u{i}", card=f"c{i}", ip="203.0.113.9"))
            for i in range(3)] == [[], [], ["shared_ip"]]


def test_shared_device_and_shared_ip_read_the_graphs_members_as_of_the_transaction() -> None:
    """With the batch's graph facts the members come from the graph as of t - as_of_lag,
    the transaction's own card and user added: what this process saw before does not
    count, so daemons owning different partitions count alike."""
    config = only("shared_device", max_cards=3, max_users=9)
    shared_ip = dataclasses.replace(config.rules.shared_ip, enabled=True, max_users=2)
    config = dataclasses.replace(config, rules=dataclasses.replace(config.rules,
                                                                   shared_ip=shared_ip))
    at = T0 - config.graph.as_of_lag_ms  # what a transaction at minute 0 may know
    facts = BatchFacts(
        device_members={"farm": Members((("c1", at - 9), ("c2", at - 8), ("c3", at)),
                                        (("u1", at - 9), ("u2", at)))},
        ip_members={"203.0.113.9": Members(users=(("u1", at - 5), ("u2", at)))})
    engine = RuleEngine(config)
    blocked = lambda _kind, _key: None  # noqa: E731

    def found(t: Transaction) -> dict[str, str]:
        return {r.code: r.detail for r in engine.evaluate(t, blocked, facts)}

    assert found(tx(1, 0, card="c9", user="u9", device="farm", ip="203.0.113.9")) == {
        "shared_device": "device used by 4 cards of 3 users", "shared_ip": "IP used by 3 users"}
    # a card and a user the graph knows on them already are not counted twice
    assert found(tx(2, 0, card="c3", user="u2", device="farm", ip="203.0.113.9")) == {}
    # a millisecond earlier c3 and u2 are not there yet; an unknown device or IP has one
    assert found(tx(3, -1 / MIN, card="c9", user="u9", device="farm", ip="203.0.113.9")) == {}
    assert found(tx(4, 0, card="c9", user="u9", device="d7", ip="198.51.100.1")) == {}
    assert len(engine.device_cards) == len(engine.ip_users) == 0  # nothing kept in-process
    # the detector hands its graph facts to the rules (the in-process sets stay empty)
    detector = Detector(config)
    decided, _ = detector.decide_batch(
        [tx(5, 0, card="c9", user="u9", device="farm", ip="203.0.113.9")], facts, _NoBlocklist(),
        T0)
    assert [r.code for r in decided[0].verdict.reasons] == ["shared_device", "shared_ip"]
    assert len(detector.engine.device_users) == 0


def test_blocklist_hit_uses_the_weight_of_the_entity_type() -> None:
    engine = RuleEngine(only("blocklist_hit"))
    reasons = engine.evaluate(tx(1, 0), lambda kind, key: "manual: stolen"
                              if (kind, key) in {("card", "c1"), ("site", "s1")} else None)
    assert {(r.code, r.weight) for r in reasons} == {("blocklist_card", 1.0),
                                                     ("blocklist_site", 0.3)}


def test_rule_state_is_bounded() -> None:
    small = dataclasses.replace(cfg.DetectorConfig(), state=cfg.StateConfig(
        max_cards=50, max_users=50, max_devices=50, max_ips=50))
    engine = RuleEngine(small)
    for i in range(1000):
        codes(engine, tx(i, i, card=f"c{i}", user=f"u{i}", device=f"d{i}", ip=f"ip{i}"))
    assert engine.state_sizes() == {"cards": 50, "users": 50, "devices": 50, "ips": 50}
    # a card's history keeps only what a window (plus an hour of lateness) can still read
    engine = RuleEngine(cfg.DetectorConfig())
    for i in range(100):
        codes(engine, tx(i, i * 5))  # one purchase every 5 minutes for 8 hours
    assert len(engine.cards.get("c1")) == 15  # the last 70 minutes


def test_combiner_noisy_or_thresholds_and_one_reason_per_code() -> None:
    config = cfg.DecisionConfig(review_threshold=0.5, block_threshold=0.82)
    allow = decide([Reason("a", "rule", "", 0.3)], config)
    assert (allow.decision, allow.score) == ("allow", 0.3)
    review = decide([Reason("a", "rule", "", 0.6), Reason("b", "rule", "", 0.5)], config)
    assert (review.decision, review.score) == (REVIEW, 0.8)
    block = decide([Reason("a", "rule", "", 0.6), Reason("b", "cypher", "", 0.5),
                    Reason("b", "rule", "", 0.7)], config)  # the stronger "b" is kept
    assert block.decision == BLOCK and block.score == 0.88
    assert [r.code for r in block.reasons] == ["b", "a"] and block.reasons[0].detector == "rule"
    assert decide([], config).decision == "allow"


def test_graph_checks_turn_facts_into_reasons_as_of_the_transaction_time() -> None:
    graph = cfg.GraphConfig()  # as_of_lag 2 s
    t = tx(1, 0, device="farm")
    at = T0 - graph.as_of_lag_ms  # what a transaction at minute 0 may know
    facts = BatchFacts(
        devices={"farm": DeviceFacts(tuple(at - 6 + i for i in range(7)), (at - 9, at - 8, at),
                                     0.9, at)},
        cards={"c1": CardFacts((("u1", at - 5), ("u2", at)), "Device x", at, None, None)},
        sites={"s1": SiteFacts(((at - 1, T0 - 3_600_000), (at, T0 - 7_200_000)))},
        ring_visible_ms={"u2": at})
    found = {r.code: r for r in reasons_for(t, facts, graph)}
    assert sorted(found) == ["compromised_site", "fraud_ring", "gnn_device", "near_fraud",
                             "shared_card", "shared_device"]
    assert found["gnn_device"].weight == pytest.approx(0.4 * 0.9)  # gnn_weight x score
    assert found["shared_device"].flag == ("device",)
    assert found["shared_device"].detail == "device linked to 7 cards and 3 users in the graph"
    assert "gnn_device" not in {r.code for r in reasons_for(
        t, facts, dataclasses.replace(graph, gnn_enabled=False))}
    # One millisecond earlier the facts dated `at` are still in the future.
    earlier = [(r.code, r.detail) for r in reasons_for(
        msgspec.structs.replace(t, event_ms=t.event_ms - 1), facts, graph)]
    assert earlier == [("shared_device", "device linked to 6 cards and 2 users in the graph")]
    old = BatchFacts(sites={"s1": SiteFacts(((at - 1, T0 - 30 * 86_400_000),
                                             (at, T0 - 29 * 86_400_000)))})
    assert reasons_for(t, old, graph) == []  # frauds outside the 14-day window


def test_rings_are_components_with_the_time_each_member_joined_one() -> None:
    links = [("card", "c1", [("u1", 5), ("u2", 10)]), ("device", "d1", [("u2", 3), ("u3", 20)]),
             ("device", "d2", [("u7", 1), ("u8", 2)]), ("card", "c9", [("u3", 30), ("u4", 40)])]
    rings = find_rings(links, min_users=3)
    assert [(r.ring_id, r.users, r.since_ms) for r in rings] == [
        ("ring-u1", ("u1", "u2", "u3", "u4"), (20, 20, 20, 40))]
    assert rings[0].links == ("card:c1", "card:c9", "device:d1")
    # As of an earlier time the links are fewer, and the members' times do not move.
    early = [(v, t, [(u, ms) for u, ms in users if ms <= 25]) for v, t, users in links]
    assert [(r.users, r.since_ms) for r in find_rings(early, 3)] == [
        (("u1", "u2", "u3"), (20, 20, 20))]
    # A busy device links only its first users (a kiosk later does not rewrite the past).
    kiosk = [("device", "k", [(f"u{i}", i) for i in range(12)])]
    assert find_rings(kiosk, 3, max_device_users=10)[0].users == tuple(
        sorted(f"u{i}" for i in range(10)))
    assert next_boundary(30_001, 30_000) == 60_000 and next_boundary(60_000, 30_000) == 60_000
    assert last_boundary(59_999, 30_000) == 30_000


def test_blocklist_entries_count_from_their_since_time() -> None:
    engine_config = only("blocklist_hit")
    detector = Detector(engine_config)

    class View:
        def __init__(self) -> None:
            self.entries = {("card", "c1"): NewEntry("card", "c1", "confirmed_fraud", "label",
                                                     1.0, {SINCE: T0 + 5 * MIN})}

        def hit(self, entity_type: str, entity_id: str) -> Entry | None:
            new = self.entries.get((entity_type, entity_id))
            if new is None:
                return None
            now = datetime.now(UTC)
            return Entry(new.entity_type, new.entity_id, new.reason, new.source, new.score,
                         new.evidence, now, now, None, None, None)

        def add_local(self, entries: list[NewEntry]) -> None:
            self.entries.update((e.key, e) for e in entries)

        def revoked(self, entity_type: str, entity_id: str) -> bool:
            return False

    decided, _ = detector.decide_batch([tx(1, 4), tx(2, 5), tx(3, 6)], None, View(), T0)
    assert [d.verdict.decision for d in decided] == ["allow", "block", "block"]


def test_quality_per_scenario_and_percentiles() -> None:
    decisions = [("f1", "block"), ("f2", "allow"), ("f3", "review"), ("g1", "block"),
                 ("g2", "allow"), ("g3", "review")]
    q = measure(decisions, {"f1": "ring", "f2": "ring", "f3": "burst"})
    assert [(r.scenario, r.transactions, r.reviewed, r.blocked) for r in q.rows] == [
        ("burst", 1, 1, 0), ("ring", 2, 0, 1), ("genuine", 3, 1, 1)]
    assert (q.flagged_precision, q.block_precision, q.fraud_recall) == (0.5, 0.5, 2 / 3)
    assert percentile([5, 1, 3, 2, 4], 50) == 3 and percentile([1.0] * 99 + [100.0], 99) == 1.0
    assert percentile([], 99) == 0.0


def scored(n: int, score: float, scenario: str | None = None, card: str | None = None,
           day: int = 0, decision: str = "allow") -> Scored:
    return Scored(f"t{n}", card or f"c{n}", T0 + day * 86_400_000 + n, score, decision, scenario)


def test_roc_auc_and_average_precision_are_sklearns_and_right_by_hand() -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    # positives 0.9, 0.4; negatives 0.8, 0.4, 0.1: pairs won by hand
    # (0.9>0.8, 0.9>0.4, 0.9>0.1, 0.4<0.8, 0.4=0.4 -> 0.5, 0.4>0.1) = 4.5 / 6
    labels = [True, False, True, False, False]
    scores = [0.9, 0.8, 0.4, 0.4, 0.1]
    assert roc_auc(labels, scores) == pytest.approx(0.75)
    # thresholds: 0.9 -> P 1/1, R 1/2; 0.8 -> no gain; 0.4 (tie, 1 positive of 2) -> P 2/4
    assert average_precision(labels, scores) == pytest.approx(0.5 * 1.0 + 0.5 * 0.5)
    assert roc_auc(labels, scores) == roc_auc_score(labels, scores)
    assert average_precision(labels, scores) == average_precision_score(labels, scores)
    # a perfect ranking, and the worst one
    assert roc_auc([True, True, False], [0.9, 0.5, 0.4]) == 1.0
    assert average_precision([True, True, False], [0.9, 0.5, 0.4]) == 1.0
    assert roc_auc([False, True], [0.9, 0.1]) == 0.0
    assert average_precision([False, True], [0.9, 0.1]) == 0.5  # P 1/2 at R 1
    # undefined: one class only
    assert roc_auc([True, True], [0.1, 0.2]) is None and roc_auc([False], [0.3]) is None
    assert average_precision([False], [0.3]) is None


def test_undecided_fraud_is_a_miss_with_the_lowest_score() -> None:
    rows = [scored(1, 0.9, "ring", decision="block"), scored(2, 0.2),
            undecided("t3", "c3", T0, "ring")]
    flagged = at_decision(rows, frozenset({"review", "block"}))
    assert (flagged.true_positives, flagged.positives, flagged.recall) == (1, 2, 0.5)
    row = {r.name: r for r in evaluate(rows)}["ring"]
    assert (row.transactions, row.frauds, row.undecided) == (3, 2, 1)
    assert row.auc == 0.5  # 0.9 beats 0.2; 0 (the undecided) loses to it
    # the undecided fraud is never ranked for an analyst: day 0 holds c1 and c2 only
    assert card_precision_at_k(rows, k=3) == (0.5, {"2026-01-01": 0.5})


def test_precision_recall_f1_at_the_operating_points() -> None:
    rows = [scored(1, 0.9, "ring", decision="block"), scored(2, 0.6, "ring", decision="review"),
            scored(3, 0.1, "ring"), scored(4, 0.9, decision="block"), scored(5, 0.0)]
    flagged = at_decision(rows, frozenset({"review", "block"}))
    assert (flagged.true_positives, flagged.flagged, flagged.positives) == (2, 3, 3)
    assert flagged.precision == 2 / 3 and flagged.recall == 2 / 3 and flagged.f1 == 2 / 3
    blocked = at_decision(rows, frozenset({"block"}))
    assert (blocked.precision, blocked.recall, blocked.f1) == (0.5, 1 / 3, 0.4)
    table = {row.name: row for row in evaluate(rows)}
    assert table["all"].transactions == 5 and table["ring"].frauds == 3


def test_card_precision_at_k_with_ties_and_empty_days() -> None:
    rows = [
        # day 0: cards a (0.9 fraud), b (0.5 genuine), c (0.5 fraud), d (0.1 genuine); k = 2:
        # a is in; b and c tie for the last place: half a fraud expected -> (1 + 0.5) / 2
        scored(1, 0.9, "x", card="a"), scored(2, 0.2, None, card="a"),
        scored(3, 0.5, None, card="b"), scored(4, 0.5, "x", card="c"),
        scored(5, 0.1, None, card="d"),
        # day 1 has no transactions at all; day 2: one card only, genuine -> 0 / 1
        scored(6, 0.7, None, card="e", day=2),
    ]
    mean, per_day = card_precision_at_k(rows, k=2)
    assert per_day == {"2026-01-01": 0.75, "2026-01-03": 0.0}
    assert mean == 0.375
    assert card_precision_at_k([], k=100) == (0.0, {})


def test_idle_cards_leave_the_state_and_no_decision_changes() -> None:
    """A card with no payment within the horizon is dropped (its history would be pruned
    to nothing on its next payment): the same stream gets the same reasons as with
    every card kept, and the card table holds the recently active cards only."""
    import itertools

    from ingest.generator import Generator, GeneratorConfig

    stream = [t for t, _ in itertools.islice(Generator(GeneratorConfig(seed=5, users=400)),
                                             20_000)]
    keeping = RuleEngine(cfg.DetectorConfig())
    keeping._forget_idle_cards = lambda _now: None  # type: ignore[method-assign]
    forgetting = RuleEngine(cfg.DetectorConfig())
    for t in stream:
        assert codes(forgetting, t) == codes(keeping, t), t.transaction_id
    newest = stream[-1].event_ms
    assert len(forgetting.cards) < len(keeping.cards) / 2
    assert all(h and h[-1].event_ms >= newest - forgetting.horizon_ms
               for h in forgetting.cards.data.values())
    assert {k for k, h in keeping.cards.data.items() if h and h[-1].event_ms >= newest} <= set(
        forgetting.cards.data)


def test_rule_state_restores_from_a_checkpoints_plain_arrays() -> None:
    """A checkpoint holds a card's payments and a user's recent countries as arrays
    (MessagePack has no named tuples): they come back named, and encode as before."""
    from detectors import checkpoint
    from detectors.rules import CardPayment, CountrySeen

    state = {"cards": [["c1", [[T0, 500, 5.0, "s1"], [T0 + MIN, 300, 3.0, "s2"]]]],
             "users": [["u1", {"count": 2, "max_usd": 5.0, "devices": ["d1"],
                               "countries": ["US"], "recent": [[T0, "US"]]}]],
             "device_cards": [["d1", ["c1"]]], "device_users": [["d1", ["u1"]]],
             "ip_users": [["10.0.0.1", ["u1"]]]}
    engine = RuleEngine(only("card_testing", min_small=3, min_sites=2))
    engine.restore(state)
    assert list(engine.cards.get("c1")) == [CardPayment(T0, 500, 5.0, "s1"),
                                            CardPayment(T0 + MIN, 300, 3.0, "s2")]
    assert engine.cards.get("c1")[1].site_id == "s2"
    assert list(engine.users.get("u1").recent) == [CountrySeen(T0, "US")]
    assert engine.users.get("u1").newest == CountrySeen(T0, "US")  # derived, then saved
    state["users"][0][1]["newest"] = [T0, "US"]
    assert msgspec.msgpack.decode(checkpoint._ENCODER.encode(engine.snapshot())) == state
    assert codes(engine, tx(3, 2, amount=4.0, site="s3")) == ["card_testing"]


class _NoBlocklist:
    def hit(self, entity_type: str, entity_id: str) -> Entry | None:
        return None

    def add_local(self, entries: list[NewEntry]) -> None:
        return None

    def revoked(self, entity_type: str, entity_id: str) -> bool:
        return False


@pytest.mark.parametrize("outlier_card", ["c9", "c1"])
def test_a_transaction_dated_2099_evicts_no_state_and_hides_no_burst(outlier_card: str) -> None:
    """State is forgotten on an event clock one outlier cannot move (the median of the
    recent event times): a velocity burst that spans it is flagged as without it."""
    config = only("velocity")
    burst = [tx(i, i * 0.5, 20.0 + i) for i in range(1, 7)]
    other = tx(50, 0.1, 30.0, card="c5")
    far = msgspec.structs.replace(tx(99, 0, 5.0, card=outlier_card), event_ms=4_070_908_800_000)

    def decide(stream: list[Transaction]) -> tuple[dict[str, list[str]], Detector]:
        detector, out = Detector(config), {}
        for start in range(0, len(stream), 2):  # small batches, as a live daemon takes them
            decided, _ = detector.decide_batch(stream[start:start + 2], None, _NoBlocklist(),
                                               T0)
            out.update((d.transaction.transaction_id, [r.code for r in d.verdict.reasons])
                       for d in decided)
        return out, detector

    clean, _ = decide([other, *burst])
    spanned, detector = decide([other, *burst[:3], far, *burst[3:]])
    assert sum("velocity" in codes for codes in clean.values()) >= 2
    assert {k: v for k, v in spanned.items() if k != "t99"} == clean
    assert "c5" in detector.engine.cards.data  # not evicted by the outlier
    assert detector.engine.clock.now_ms is not None and detector.engine.clock.now_ms < T0 + MIN * 10


def test_the_newest_country_seen_survives_eviction_and_late_events() -> None:
    """The country-hop rule reads the newest learnt transaction without a scan; late
    events and the eviction of the newest from the last eight give the scan's answer."""
    from detectors.rules import CountrySeen, UserState

    user = UserState()
    for ms, country in [(50, "FR"), (10, "US"), (20, "US"), (30, "DE"), (40, "US"),
                        (41, "US"), (42, "US"), (43, "US"), (44, "US"), (45, "IT")]:
        user.remember(CountrySeen(ms, country))
        assert user.newest == max(user.recent)  # (50, FR) until it is evicted
    assert CountrySeen(50, "FR") not in user.recent and user.newest == CountrySeen(45, "IT")
    engine = RuleEngine(only("country_hop"))
    engine.learn(tx(1, 0, country="US"), flagged=False)
    engine.learn(tx(2, 10, country="FR"), flagged=False)
    # a late event (between the two) compares with the US payment before it
    assert codes(engine, tx(3, 5, country="US")) == []
    assert codes(engine, tx(4, 11, country="US")) == ["country_hop"]
