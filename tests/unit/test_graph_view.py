"""How far the daemon takes the graph to be complete (pure: the projection's progress and
the topic's ends come from fakes of the project's own interfaces)."""

from __future__ import annotations

import time

import pytest

from detectors.config import DetectorConfig
from fraudgraph.errors import ConfigError
from fraudgraph.stream.graph_view import GraphView
from graph import detect
from graph.detect import PartitionProgress


class Ends:
    """A transactions source whose partitions' ends move as the test says; counts looks."""

    def __init__(self, ends: dict[int, int]) -> None:
        self.ends, self.looks = ends, 0

    def end_offsets(self) -> dict[int, int]:
        self.looks += 1
        return dict(self.ends)


@pytest.fixture
def progress(monkeypatch: pytest.MonkeyPatch) -> dict[int, PartitionProgress]:
    held: dict[int, PartitionProgress] = {}
    monkeypatch.setattr(detect, "projection_progress", lambda _driver, _topic: dict(held))
    return held


def view(source: Ends) -> GraphView:
    return GraphView(None, source, None, None, DetectorConfig(), "transactions",  # type: ignore[arg-type]
                     wait_seconds=1.0)


def test_a_partition_counts_whole_only_by_a_look_at_its_end_after_the_batch(
        progress: dict[int, PartitionProgress]) -> None:
    source = Ends({0: 10, 1: 5, 2: 0})
    graph = view(source)
    progress.update({0: PartitionProgress(9, 1_000), 1: PartitionProgress(2, 700)})
    assert graph.complete_ms() == 699  # partition 0 whole, 1 up to 700 less a ms, 2 empty
    assert source.looks == 1
    # more arrives in partitions 0 and 2; the projection of 1 catches up with the old end
    source.ends.update({0: 20, 2: 3})
    progress[1] = PartitionProgress(4, 800)
    assert graph.complete_ms() == float("inf")  # the end looked up under a second ago
    assert source.looks == 1
    # a batch consumed after that look: partition 0's end is looked up again, and 2 is
    # no longer empty (nothing of it projected: nothing is known to be complete)
    consumed = time.monotonic()
    assert graph.complete_ms(consumed) == float("-inf")
    assert source.looks == 2
    progress[2] = PartitionProgress(2, 900)
    assert graph.complete_ms(consumed) == 999  # partition 0 up to its newest event, 1 whole
    assert source.looks == 2  # the look is newer than the batch: no other


def test_no_partition_projected_means_nothing_is_known(
        progress: dict[int, PartitionProgress]) -> None:
    graph = view(Ends({0: 4}))
    assert graph.complete_ms(time.monotonic()) == float("-inf")
    progress[0] = PartitionProgress(3, 500)
    assert graph.complete_ms(time.monotonic()) == float("inf")


def test_a_projection_writing_with_another_detail_setting_stops_the_daemon(
        progress: dict[int, PartitionProgress]) -> None:
    graph = view(Ends({0: 4, 1: 4}))  # the daemon's setting: all (the default)
    progress.update({0: PartitionProgress(3, 500, "all"), 1: PartitionProgress(3, 600, None)})
    assert graph.complete_ms(time.monotonic()) == float("inf")  # None: not recorded
    progress[1] = PartitionProgress(3, 600, "flagged")
    with pytest.raises(ConfigError, match=r"FRAUDGRAPH_GRAPH_DETAIL=flagged and this daemon "
                                          r"runs with all: .* written by neither; give the "
                                          r"projector and the daemon the same"):
        graph.complete_ms(time.monotonic())
    graph.detail = "flagged"
    progress[0] = PartitionProgress(3, 500, "flagged")
    assert graph.complete_ms(time.monotonic()) == float("inf")
