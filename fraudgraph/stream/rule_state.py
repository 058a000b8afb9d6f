"""Rule-state checkpoints of a daemon's consumer group (:mod:`detectors.checkpoint`):
restored at start (the source resumes at the saved offsets), saved at most every
``checkpoint_every`` seconds after a batch's effects are durable.

Saving never stops the loop for longer than a ``fork()``: the child process holds a
copy-on-write image of the state as it stood after the batch (the positions just
committed belong to exactly that state), encodes it, writes it atomically and exits;
the loop goes on deciding meanwhile, and reaps the child at a later batch.  One
writer at a time: a checkpoint falls due only once the previous one is written.
The writer dies with its parent (``PR_SET_PDEATHSIG``), so a crashed daemon leaves
the last complete checkpoint, exactly as a synchronous write would.  A clean stop
waits for the writer, then saves once more in the foreground.  Where ``fork`` is
missing the save runs in the foreground.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import gc
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from detectors import checkpoint
from detectors.checkpoint import Offsets
from detectors.features import FeatureState
from detectors.pipeline import Detector
from detectors.rules import RuleEngine
from fraudgraph import metrics
from fraudgraph.errors import ConfigError
from fraudgraph.settings import Settings
from ingest.source import TransactionSource

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # prctl(2): a signal for this process when its parent dies


def _libc_prctl() -> Any:
    """prctl(2), looked up here in the parent: the forked child must not dlopen (another
    thread may have held the loader's lock at the fork).  None: not Linux."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _libc_prctl()


class RuleState:
    """Rule-state checkpoints (:mod:`detectors.checkpoint`) of this daemon's group."""

    def __init__(self, settings: Settings, group: str, every: float | None,
                 detector: Detector, background: bool = hasattr(os, "fork")) -> None:
        """``every``: seconds between checkpoints; None: none (a ``--from-beginning``
        run, which rebuilds the state from the start).  ``background``: write in a
        forked child (see the module docstring)."""
        self.group = group
        self.path = checkpoint.path_for(settings.data_dir, group, settings.topics.transactions)
        self.every = every
        self.detector = detector
        self.background = background
        self.last = time.monotonic()
        self.writer: tuple[int, float] | None = None  # (pid, started) of the child writing
        self.longest_pause = 0.0  # seconds: the longest the loop stopped for a checkpoint
        self.written = 0  # checkpoints completed
        self.writer_cpu = 0.0  # CPU seconds of the collected writers (not in the loop's time)
        self._lock: Any = None  # the open lock file while this process owns the path

    def own(self) -> bool:
        """Take the checkpoint's path until :meth:`release` (or exit); False: another
        process of the group, on this data folder, holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(self.path.with_suffix(".lock"), "a")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            return False
        self._lock = lock
        return True

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def claim(self) -> None:
        """Before the daemon joins its group: two daemons of one group on one data folder
        would write one file, each over the other's state.  With checkpoints on, take
        the path (a lock held until :meth:`release` or exit) or refuse to start; with
        them off (a ``--from-beginning`` run rebuilds the state from the start), remove
        a stale checkpoint unless another daemon holds it."""
        if self.every is None:
            if self.path.exists() and self.own():  # nobody else writes it: stale, gone
                self.path.unlink(missing_ok=True)
                checkpoint.remove_stale(self.path)
                self.release()
            return
        if not self.own():
            raise ConfigError(
                f"another daemon of consumer group {self.group!r} runs on this data folder "
                f"and writes its rule-state checkpoint ({self.path}); two would overwrite "
                f"each other's state. Give each daemon its own FRAUDGRAPH_DATA_DIR, run "
                f"this one with --checkpoint-every 0, or stop the other first")
        checkpoint.remove_stale(self.path)

    def restore(self, source: TransactionSource) -> None:
        """Load the checkpoint (after :meth:`claim`) into the rules and have ``source``
        resume at its offsets; a checkpoint whose offsets the topic no longer has is
        ignored.  Nothing with checkpoints off."""
        if self.every is None:
            return
        saved = checkpoint.load(self.path, self.detector.version)
        if saved is None:
            return
        if not source.offsets_valid(saved.offsets):
            log.warning("ignoring the rule-state checkpoint %s: its offsets are outside the "
                        "topic's (recreated, or truncated by retention); empty state", self.path)
            return
        try:
            self.detector.restore(saved.state)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            log.warning("ignoring the rule-state checkpoint %s (%s); empty state", self.path, exc)
            # nothing half-restored
            self.detector.engine = RuleEngine(self.detector.config)
            self.detector.features = FeatureState(self.detector.config.state.max_cards)
            return
        source.start_at(saved.offsets)
        log.warning("rule state restored from %s (%s); resuming at %s", self.path,
                    ", ".join(f"{k} {v}" for k, v in self.detector.engine.state_sizes().items()),
                    ", ".join(f"{t}[{p}]@{o}" for (t, p), o in sorted(saved.offsets.items())))

    def checkpoint(self, source: TransactionSource, force: bool = False) -> None:
        """Save state and positions, at most every ``checkpoint_every`` seconds (``force``:
        now, in the foreground, after any writer in flight); called only when everything
        consumed so far has durable effects."""
        self._reap(wait=force)
        if self.every is None or self.writer is not None:
            return
        if not force and time.monotonic() - self.last < self.every:
            return
        positions = source.positions()
        if not positions:
            return
        started = self.last = time.monotonic()
        if force or not self.background:
            self._save(positions)
            if not force:  # a clean stop's save: the loop has ended, nothing waits
                self._paused(time.monotonic() - started)
            self.written += 1
            return
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: write, never return into the loop
            _write_and_exit(self, positions, parent)
        self.writer = (pid, started)
        self._paused(time.monotonic() - started)

    def wait(self) -> None:
        """Wait for the writer in flight, if any, and collect it."""
        self._reap(wait=True)

    def _save(self, positions: Offsets) -> int:
        return checkpoint.save(self.path, positions, self.detector.snapshot(),
                               self.detector.version)

    def _paused(self, seconds: float) -> None:
        self.longest_pause = max(self.longest_pause, seconds)
        metrics.DETECTOR_CHECKPOINT_PAUSE.observe(seconds)

    def _reap(self, wait: bool) -> None:
        """Collect a finished writer (``wait``: until it finishes)."""
        if self.writer is None:
            return
        pid, started = self.writer
        done, status, usage = os.wait4(pid, 0 if wait else os.WNOHANG)
        if done == 0:
            return
        self.writer = None
        self.writer_cpu += usage.ru_utime + usage.ru_stime
        seconds = time.monotonic() - started
        code = os.waitstatus_to_exitcode(status)
        if code == 0:
            self.written += 1
            metrics.DETECTOR_CHECKPOINT_WRITE.observe(seconds)
            log.debug("rule-state checkpoint written in the background in %.3fs", seconds)
        else:
            metrics.DETECTOR_CHECKPOINT_FAILED.inc()
            log.error("the rule-state checkpoint writer for %s failed (exit status %d); the "
                      "previous checkpoint stays, the next is due in %ss", self.path, code,
                      self.every)


def _write_and_exit(state: RuleState, positions: Offsets, parent: int) -> None:
    """In the forked child: die with the parent, write the checkpoint, exit (no atexit
    handlers, no buffers of the parent's flushed twice)."""
    code = 1
    try:
        gc.disable()  # a collection would touch (copy) every page of the state
        _die_with_parent(parent)
        state.release()  # the lock lives as long as the parent, not as this copy of it
        with contextlib.suppress(OSError):  # short of memory, the kernel kills the copy first
            Path("/proc/self/oom_score_adj").write_text("1000")
        state._save(positions)
        code = 0
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.write(2, f"rule-state checkpoint writer: {type(exc).__name__}: {exc}\n".encode())
    finally:
        os._exit(code)


def _die_with_parent(parent: int) -> None:
    if _PRCTL is None:
        return  # not Linux: the writer may outlive a crashed parent by its write
    _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
