"""The daemon's Neo4j call clock (``graph.detect.CLOCK``): calls and wall time per function,
failed calls included, and the difference between two snapshots."""

from __future__ import annotations

import pytest

from graph import detect
from graph.detect import QueryClock


class _Refusing:
    """A driver whose every query fails (what a timed call does with the error)."""

    def execute_query(self, *_args: object, **_kwargs: object) -> None:
        raise RuntimeError("neo4j went away")


def test_a_failed_call_is_counted_and_its_error_passes_through(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = QueryClock()
    heard: list[tuple[str, float]] = []
    clock.observe = lambda name, seconds: heard.append((name, seconds))
    monkeypatch.setattr(detect, "CLOCK", clock)
    with pytest.raises(RuntimeError, match="went away"):
        detect.projection_progress(_Refusing(), "transactions")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        detect.label_fraud(_Refusing(), [])  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        detect.label_fraud(_Refusing(), [])  # type: ignore[arg-type]
    snapshot = clock.snapshot()
    assert {name: calls for name, (calls, _) in snapshot.items()} == {
        "projection_progress": 1, "label_fraud": 2}
    assert all(seconds >= 0 for _, seconds in snapshot.values())
    assert [name for name, _ in heard] == ["projection_progress", "label_fraud", "label_fraud"]


def test_since_holds_only_what_was_called_between_two_snapshots() -> None:
    clock = QueryClock()
    clock.add("batch_features", 0.5)
    clock.add("ring_links", 2.0)
    before = clock.snapshot()
    clock.add("batch_features", 0.25)
    clock.add("set_decisions", 1.0)
    assert QueryClock.since(before, clock.snapshot()) == {
        "batch_features": (1, 0.25), "set_decisions": (1, 1.0)}
