"""Keep the stack's state private: the data folder, the umask, one-off password files.

The data folder holds every transaction (Kafka's log), the graph (Neo4j's store),
the blocklist, models and secrets.env, so nobody but its owner may read it:

- the folder is 0700, or 0710 with the `postgres` user's group when we are root
  and run PostgreSQL's cluster as that user (it may traverse the folder to reach
  its own ``postgres/`` sub-folder, and list or read nothing else);
- every folder directly under it is 0700 and every file 0600, which also closes
  folders that earlier versions created world-readable;
- the stack creates files and starts its services with umask 077.

A password handed to a command goes in a file, never on its command line (which
``/proc`` shows to everyone): ``initdb --pwfile``, or a java ``@argfile``.  The
file is written into a fresh folder of ours from :func:`tempfile.mkdtemp`, never
into a folder that another user owns, and only ever as a new file
(``O_EXCL | O_NOFOLLOW``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fraudgraph.errors import StackError

#: The umask of the stack's own file creation and of every process it starts.
PRIVATE_UMASK = 0o077
DATA_DIR_MODE = 0o700
#: The data folder's mode when a service user (postgres) must traverse it.
DATA_DIR_MODE_WITH_GROUP = 0o710


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Run the body with umask 077 (files 0600, folders 0700), then restore the old one."""
    previous = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def secure_data_dir(data_dir: Path, group: int | None = None) -> None:
    """Create ``data_dir`` if needed and make it and its direct entries private.

    ``group``: a group id that must traverse the folder (the `postgres` user's when
    its cluster runs as that user); the folder is then ``root:group`` 0710, else 0700.
    Idempotent; symbolic links directly under the folder are left alone.
    """
    try:
        data_dir.mkdir(mode=DATA_DIR_MODE, parents=True, exist_ok=True)
        if group is not None:
            os.chown(data_dir, -1, group)
        os.chmod(data_dir, DATA_DIR_MODE if group is None else DATA_DIR_MODE_WITH_GROUP)
        for entry in data_dir.iterdir():
            mode = entry.lstat().st_mode
            if stat.S_ISDIR(mode):
                os.chmod(entry, 0o700)
            elif stat.S_ISREG(mode):
                os.chmod(entry, 0o600)
    except PermissionError as exc:
        raise StackError(f"cannot make the data folder {data_dir} private ({exc.strerror}: "
                         f"{exc.filename}); is it someone else's? Set FRAUDGRAPH_DATA_DIR "
                         "to a folder of your own") from None


def write_new_private_file(path: Path, text: str, owner: str | None = None) -> None:
    """Create ``path`` with ``text``, mode 0600, owned by user ``owner`` (default: us).

    Never follows or reuses what is already at ``path``: a file or a symbolic link
    there (even a dangling one) is refused with a StackError.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise StackError(f"{path} already exists (a file or a link): refusing to write a "
                         "secret through it") from None
    with os.fdopen(fd, "w") as handle:
        if owner is not None:
            entry = pwd.getpwnam(owner)
            os.fchown(fd, entry.pw_uid, entry.pw_gid)
        os.fchmod(fd, 0o600)
        handle.write(text)


@contextlib.contextmanager
def secret_file(text: str, reader: str | None = None, name: str = "secret") -> Iterator[Path]:
    """A file holding ``text`` (and a newline) for the ``with`` body, then removed.

    It lives in a fresh folder of ours (``mkdtemp``: 0700, or ``us:reader's group``
    0710 so that user ``reader`` may open the file and list nothing), is created new
    (``O_EXCL | O_NOFOLLOW``) with mode 0600, and belongs to ``reader`` if given.
    """
    folder = Path(tempfile.mkdtemp(prefix="fraudgraph-"))
    try:
        if reader is not None:
            os.chown(folder, -1, pwd.getpwnam(reader).pw_gid)
            os.chmod(folder, 0o710)
        path = folder / name
        write_new_private_file(path, text + "\n", owner=reader)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def java_argfile_quote(argument: str) -> str:
    """``argument`` as one quoted argument of a java launcher ``@argfile``."""
    if "\n" in argument or "\r" in argument:
        raise StackError("an argument for a java @argfile cannot contain a line break")
    return '"' + argument.replace("\\", "\\\\").replace('"', '\\"') + '"'
