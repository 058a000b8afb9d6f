"""Start, find and stop the stack's processes, by PID only.

A PID file alone is not trusted: the PID must be alive, not a zombie, and its
command line must contain the service's marker (a path under the data folder),
so a recycled PID is never mistaken for, or signalled as, one of ours.
Every process starts with umask 077: what a service writes is its owner's only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from fraudgraph.stack.private import PRIVATE_UMASK


def cmdline(pid: int) -> str | None:
    """The process's command line joined by spaces, or None if it is gone or a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return None
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace")


def running_pid(pid_file: Path, marker: str) -> int | None:
    """The PID recorded in ``pid_file`` if that process is alive and carries ``marker``."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    line = cmdline(pid)
    return pid if line is not None and marker in line else None


def start(argv: Sequence[str], *, log_path: Path, pid_file: Path, cwd: Path,
          env: Mapping[str, str] | None = None, user: str | None = None) -> int:
    """Start ``argv`` detached (own session, umask 077), output appended to ``log_path``
    (created 0600); record its PID."""
    log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)  # also a log an older version left world-readable
    with open(fd, "ab") as log:
        log.write(f"\n---- started {time.strftime('%Y-%m-%d %H:%M:%S')} ----\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=cwd, env=dict(env) if env is not None else None, start_new_session=True,
            user=user, group=user, extra_groups=[] if user else None, umask=PRIVATE_UMASK,
        )
    pid_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def alive(pid: int) -> bool:
    _reap(pid)
    return cmdline(pid) is not None


def stop(pid: int, sig: int = signal.SIGTERM, timeout: float = 60.0) -> bool:
    """Send ``sig``; after ``timeout`` s send SIGKILL. Returns True if it stopped gracefully."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    while alive(pid):
        time.sleep(0.1)
    return False


def _reap(pid: int) -> None:
    # When the stack was started by this very process (tests), collect the exit status
    # so the child does not linger as a zombie.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def tail(path: Path, lines: int = 20) -> list[str]:
    """The last ``lines`` lines of a text file (empty if missing)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read().decode(errors="replace")
    except FileNotFoundError:
        return []
    return data.splitlines()[-lines:]
