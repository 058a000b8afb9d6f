"""Rule-state checkpoints: a restored engine decides exactly like the one that never stopped."""

from __future__ import annotations

import dataclasses
import itertools
import os
from pathlib import Path
from typing import Any

from detectors import checkpoint
from detectors import config as cfg
from detectors.decision import ALLOW, decide
from detectors.rules import RuleEngine
from ingest.generator import Generator, GeneratorConfig
from ingest.transaction import Transaction

CONFIG = cfg.load("default")


def decide_all(engine: RuleEngine, txs: list[Transaction]) -> list[tuple[str, list[str]]]:
    out = []
    for tx in txs:
        reasons = engine.evaluate(tx, lambda _t, _i: None)
        verdict = decide(reasons, CONFIG.decision)
        engine.learn(tx, verdict.decision != ALLOW)
        out.append((verdict.decision, sorted(r.code for r in verdict.reasons)))
    return out


def stream(n: int) -> list[Transaction]:
    config = GeneratorConfig(seed=5, users=300, sites=60, fraud_rate=0.05)
    return [tx for tx, _ in itertools.islice(Generator(config), n)]


def test_restored_state_decides_the_rest_of_the_stream_like_an_uninterrupted_engine(
        tmp_path: Path) -> None:
    txs = stream(6000)
    whole = decide_all(RuleEngine(CONFIG), txs)
    assert {d for d, _ in whole} >= {"allow", "review"}  # the stream exercises the rules

    first = RuleEngine(CONFIG)
    decide_all(first, txs[:4000])
    path = checkpoint.path_for(tmp_path, "group/with odd:chars", "transactions")
    size = checkpoint.save(path, {("transactions", 0): 2000, ("transactions", 1): 2000},
                           first.snapshot(), "v1")
    assert size == path.stat().st_size > 0
    assert path.parent == tmp_path / "checkpoints" and "/" not in path.name
    assert os.stat(path).st_mode & 0o777 == 0o600

    loaded = checkpoint.load(path, "v1")
    assert loaded is not None
    assert loaded.offsets == {("transactions", 0): 2000, ("transactions", 1): 2000}
    restored = RuleEngine(CONFIG)
    restored.restore(loaded.state)
    assert restored.state_sizes() == first.state_sizes()
    assert restored.snapshot() == first.snapshot()
    assert decide_all(restored, txs[4000:]) == whole[4000:]
    assert decide_all(RuleEngine(CONFIG), txs[4000:]) != whole[4000:]  # what the state is for


def test_restore_keeps_the_most_recent_keys_within_smaller_limits(tmp_path: Path) -> None:
    engine = RuleEngine(CONFIG)
    decide_all(engine, stream(2000))
    small = dataclasses.replace(CONFIG, state=dataclasses.replace(CONFIG.state, max_cards=10))
    restored = RuleEngine(small)
    checkpoint.save(tmp_path / "c", {("t", 0): 1}, engine.snapshot(), "v1")
    loaded = checkpoint.load(tmp_path / "c", "v1")
    assert loaded is not None
    restored.restore(loaded.state)
    assert list(restored.cards.data) == list(engine.cards.data)[-10:]


def test_a_checkpoint_of_other_rules_or_a_damaged_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints" / "g--t.msgpack"
    assert checkpoint.load(path, "v1") is None  # none yet
    checkpoint.save(path, {("t", 0): 1}, RuleEngine(CONFIG).snapshot(), "v1")
    assert checkpoint.load(path, "v2") is None
    path.write_bytes(b"\x93garbage")
    assert checkpoint.load(path, "v1") is None


class _Positions:
    """The one thing RuleState reads of the source when it saves."""

    def __init__(self, offsets: dict[tuple[str, int], int]) -> None:
        self.offsets = offsets

    def positions(self) -> dict[tuple[str, int], int]:
        return dict(self.offsets)


def test_a_background_checkpoint_holds_the_state_at_its_batch_not_what_came_after(
        tmp_path: Path) -> None:
    """The loop forks a writer and goes on deciding: the file holds the state and the
    positions of the moment it was due, untouched by the batches decided meanwhile."""
    from detectors.blocklist import BlocklistCache
    from detectors.pipeline import Detector
    from fraudgraph.settings import load_settings
    from fraudgraph.stream.rule_state import RuleState

    settings = load_settings({"FRAUDGRAPH_DATA_DIR": str(tmp_path),
                              "FRAUDGRAPH_PROFILE": "dev"})
    detector = Detector(CONFIG)
    view = BlocklistCache(lambda since: ([], since), 1e9)
    txs = stream(3000)
    detector.decide_batch(txs[:2000], None, view, 0)
    reference = tmp_path / "reference.msgpack"  # the state when the checkpoint is due
    checkpoint.save(reference, {}, detector.snapshot(), detector.version)
    state = RuleState(settings, "group", 0.0, detector)
    state.checkpoint(_Positions({("transactions", 0): 2000}))  # type: ignore[arg-type]
    assert state.writer is not None  # writing in a child; the loop goes on
    detector.decide_batch(txs[2000:], None, view, 0)
    state.wait()
    assert state.writer is None and state.written == 1
    saved = checkpoint.load(state.path, detector.version)
    assert saved is not None and saved.offsets == {("transactions", 0): 2000}
    at_due = checkpoint.load(reference, detector.version)
    assert at_due is not None and saved.state == at_due.state
    assert Detector(CONFIG).snapshot() != saved.state
    assert [p.name for p in state.path.parent.iterdir()] == [state.path.name]  # no temp left

    # a clean stop writes in the foreground: the state as it is now
    state.checkpoint(_Positions({("transactions", 0): 3000}),  # type: ignore[arg-type]
                     force=True)
    assert state.writer is None and state.written == 2
    final = checkpoint.load(state.path, detector.version)
    assert final is not None and final.offsets == {("transactions", 0): 3000}
    assert final.state != saved.state  # the batches decided after the fork


def test_a_failed_background_writer_leaves_the_previous_checkpoint(
        tmp_path: Path, monkeypatch: Any) -> None:
    from detectors.pipeline import Detector
    from fraudgraph import metrics
    from fraudgraph.settings import load_settings
    from fraudgraph.stream.rule_state import RuleState

    settings = load_settings({"FRAUDGRAPH_DATA_DIR": str(tmp_path),
                              "FRAUDGRAPH_PROFILE": "dev"})
    detector = Detector(CONFIG)
    state = RuleState(settings, "group", 0.0, detector)
    state.checkpoint(_Positions({("transactions", 0): 10}))  # type: ignore[arg-type]
    state.wait()
    failed_before = metrics.DETECTOR_CHECKPOINT_FAILED._value.get()

    def refuse(*_args: Any) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save", refuse)  # in the forked writer too
    state.checkpoint(_Positions({("transactions", 0): 20}))  # type: ignore[arg-type]
    assert state.writer is not None
    state.wait()
    assert state.written == 1
    assert metrics.DETECTOR_CHECKPOINT_FAILED._value.get() == failed_before + 1
    saved = checkpoint.load(state.path, detector.version)
    assert saved is not None and saved.offsets == {("transactions", 0): 10}


def test_a_failed_write_leaves_no_temporary_file_and_stale_ones_are_removed(
        tmp_path: Path, monkeypatch: Any) -> None:
    import pytest

    path = checkpoint.path_for(tmp_path, "group", "transactions")

    def refuse(*_args: Any) -> None:
        raise OSError("rename refused")

    with monkeypatch.context() as patch:
        patch.setattr(checkpoint.os, "replace", refuse)
        with pytest.raises(OSError, match="rename refused"):
            checkpoint.save(path, {}, {}, "v1")
    assert list(path.parent.iterdir()) == []  # the temporary file went too
    (path.parent / f"{path.name}.4242.tmp").write_bytes(b"half a checkpoint")
    checkpoint.save(path, {("transactions", 0): 1}, {}, "v1")
    assert checkpoint.remove_stale(path) == 1
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_two_daemons_of_one_group_on_one_data_folder_do_not_share_a_checkpoint(
        tmp_path: Path) -> None:
    """The second with checkpoints on is refused at start (it would overwrite the first's
    state); one with checkpoints off leaves the first's checkpoint alone; once the first
    has stopped, the path is free again."""
    import pytest

    from detectors.pipeline import Detector
    from fraudgraph.errors import ConfigError
    from fraudgraph.settings import load_settings
    from fraudgraph.stream.rule_state import RuleState

    settings = load_settings({"FRAUDGRAPH_DATA_DIR": str(tmp_path),
                              "FRAUDGRAPH_PROFILE": "dev"})
    source: Any = None  # no checkpoint yet: restore never reaches the source
    first = RuleState(settings, "group", 30.0, Detector(CONFIG))
    first.claim()
    first.restore(source)
    first.checkpoint(_Positions({("transactions", 0): 10}), force=True)  # type: ignore[arg-type]
    assert first.path.exists()
    second = RuleState(settings, "group", 30.0, Detector(CONFIG))
    with pytest.raises(ConfigError, match=r"FRAUDGRAPH_DATA_DIR.*--checkpoint-every 0"):
        second.claim()
    RuleState(settings, "other-group", 30.0, Detector(CONFIG)).claim()  # its own file
    RuleState(settings, "group", None, Detector(CONFIG)).claim()  # checkpoints off
    assert first.path.exists()  # left alone: the first still writes it
    first.release()
    RuleState(settings, "group", None, Detector(CONFIG)).claim()
    assert not first.path.exists()  # nobody writes it: a stale checkpoint, removed
    second.claim()  # free now
    second.release()
    # with checkpoints off and nothing to remove, no lock file is left behind either
    RuleState(settings, "off-group", None, Detector(CONFIG)).claim()
    assert not any("off-group" in p.name for p in first.path.parent.iterdir())
