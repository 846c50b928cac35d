"""Where a command may write a file, and writing it whole or not at all (``bmem behaviors export -o``).

``export -o handbook.db`` once truncated the store's own file: every behavior and trace of every
namespace was gone. So the target is checked before anything is opened: never the store or its
``-wal``/``-shm``/``-journal`` files, never any SQLite database, no other existing file without
``--force``, and its folder must exist. The text goes to a temporary file beside the target that
is renamed over it at the end, so a failure leaves the target as it was and nothing half-written.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ..errors import BehaviorMemoryError, InvalidInputError

__all__ = ["SQLITE_HEADER", "check_output", "write_whole"]

#: The first 16 bytes of every SQLite 3 database file.
SQLITE_HEADER = b"SQLite format 3\x00"
_STORE_SIDE_FILES = ("", "-wal", "-shm", "-journal")


def _same(a: Path, b: Path) -> bool:
    """Whether two paths name one file: by inode when both exist (hard links), else by resolved path."""
    try:
        return a.samefile(b)
    except OSError:
        return a.resolve() == b.resolve()


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def check_output(out: Path, *, store: Path, force: bool) -> Path:
    """The resolved path ``out`` may be written at, or ``InvalidInputError`` saying why not.

    Every refusal says that nothing was written: the caller checks before it opens anything.
    """
    target = out.expanduser().resolve()  # through symlinks: the file that would really change
    if not target.parent.is_dir():
        raise InvalidInputError(f"cannot write {out}: the folder {target.parent} does not exist; nothing was written")
    store = store.expanduser()
    for suffix in _STORE_SIDE_FILES:
        if _same(target, store.with_name(store.name + suffix)):
            raise InvalidInputError(
                f"refusing to write {out}: it is the handbook's own database{' file ' + suffix if suffix else ''} "
                f"({store}); nothing was written and the handbook is untouched"
            )
    if target.is_dir():
        raise InvalidInputError(f"cannot write {out}: it is a folder; nothing was written")
    if target.exists():
        if _is_sqlite(target):
            raise InvalidInputError(f"refusing to write {out}: it is an SQLite database; nothing was written")
        if not force:
            raise InvalidInputError(f"{out} already exists; nothing was written (pass --force to replace it)")
    return target


def _new_file_mode(target: Path) -> int:
    """The mode the file would have had if opened normally: kept when replacing, else 0666 less the umask."""
    try:
        return target.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)  # reading the umask means setting it; put it straight back
        os.umask(umask)
        return 0o666 & ~umask


def write_whole(target: Path, write: Callable[[IO[str]], int]) -> int:
    """Run ``write`` on a temporary file beside ``target`` and rename it over ``target``; return its result.

    On any failure the temporary file is removed and ``target`` is left as it was.
    """
    try:
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise BehaviorMemoryError(
            f"cannot write in {target.parent}: {exc.strerror or exc}; nothing was written"
        ) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            result = write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(temp, _new_file_mode(target))
        os.replace(temp, target)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise BehaviorMemoryError(f"cannot write {target}: {exc.strerror or exc}; the file was not changed") from exc
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return result
