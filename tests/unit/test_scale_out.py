"""The scale-out comparison (pure parts of `fraudgraph bench-scale-out`)."""

from __future__ import annotations

import click
import pytest

from fraudgraph.scale_out import Decided, Layout, LayoutRun, as_json, compare
from fraudgraph.scale_out_cli import _layout


def _run(layout: Layout, decisions: dict[str, Decided]) -> LayoutRun:
    run = LayoutRun(layout, decisions, published=len(decisions) + 1,
                    first_decided_ms=1_000, last_decided_ms=3_000)
    return run


def test_transactions_differ_by_decision_or_by_reason_codes_and_the_codes_are_counted() -> None:
    one = _run(Layout(1, 1), {
        "a": Decided("allow", (), 5.0),
        "b": Decided("review", ("shared_ip",), 6.0),
        "c": Decided("review", ("velocity", "shared_ip"), 7.0),
        "d": Decided("block", ("amount_spike", "country_hop"), 8.0),
        "only-here": Decided("allow", (), 1.0)})
    two = _run(Layout(2, 2), {
        "a": Decided("allow", (), 50.0),  # latency differs: still identical
        "b": Decided("allow", (), 6.0),  # decision and code
        "c": Decided("review", ("velocity",), 7.0),  # same decision, a code fewer
        "d": Decided("block", ("amount_spike", "country_hop"), 9.0),
        "only-there": Decided("block", ("velocity",), 1.0)})
    c = compare(one, two)
    assert (c.compared, c.identical, c.share) == (4, 2, 0.5)
    assert c.codes == {"shared_ip": 2}
    assert [tx for tx, _, _ in c.examples] == ["b", "c"]
    assert one.per_second == 5 / 2.0 and one.latency(50) == 6.0
    assert one.reason_codes() == {"shared_ip": 2, "velocity": 1, "amount_spike": 1,
                                  "country_hop": 1}


def test_the_json_holds_each_layout_and_each_comparison() -> None:
    one = _run(Layout(1, 1), {"a": Decided("allow", (), 5.0)})
    two = _run(Layout(2, 2), {"a": Decided("review", ("shared_ip",), 4.0)})
    figures = as_json(1000, 0.0, [one, two], [compare(one, two)], 43_200_000)
    assert (figures["offered_rate"], figures["label_delay_ms"]) == ("backlog", 43_200_000)
    assert [(x["layout"], x["decided"], x["records"], x["reason_codes"])
            for x in figures["layouts"]] == [("1+1", 1, 2, {}), ("2+2", 1, 2, {"shared_ip": 1})]
    (comparison,) = figures["comparisons"]
    assert (comparison["compared"], comparison["identical"], comparison["share"]) == (1, 0, 0.0)
    assert comparison["differing_codes"] == {"shared_ip": 1}
    assert comparison["examples"] == [{"transaction_id": "a",
                                       "first": {"decision": "allow", "codes": []},
                                       "this": {"decision": "review", "codes": ["shared_ip"]}}]


@pytest.mark.parametrize("value", ["2", "2+", "a+b", "0+1", "1+0"])
def test_a_layout_is_daemons_plus_projectors_of_at_least_one_each(value: str) -> None:
    with pytest.raises(click.BadParameter, match=r"DAEMONS\+PROJECTORS|at least one"):
        _layout(value)
    assert _layout("2+3") == (2, 3)
