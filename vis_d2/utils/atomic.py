"""Writing a file so that readers only ever see the old content or the complete new one."""
import contextlib
import os
import secrets
from typing import IO, Iterator, Optional

__all__ = ["atomic_write"]


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", *, encoding: Optional[str] = None) -> Iterator[IO]:
    """Open a temporary file next to ``path`` for writing; on success it replaces ``path`` in one step.

    A crash, a kill or an exception mid-write leaves ``path`` as it was (old content, or absent) and
    removes the temporary file: a truncated results.json or metrics.json is never seen. The temporary
    file sits in the same folder, so the final ``os.replace`` is a rename within one file system (atomic on
    POSIX and Windows). It is created with the permissions a plain ``open`` would give (0o666 less the
    umask) under a random name (two writers of one file never share a temporary), and flushed to disk
    before the rename; the folder is synced after it.

    Args:
        path: the file to write (local path; its folder must exist).
        mode: ``"w"`` (text) or ``"wb"`` (bytes).
        encoding: text encoding for ``"w"`` (default utf-8).

    Yields:
        the open temporary file.

    Example::

        with atomic_write("out/metrics.json") as f:
            json.dump(metrics, f)
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    while True:  # O_EXCL: never reuse (or follow a link to) an existing file
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        if mode == "wb":
            f = os.fdopen(fd, "wb")
        else:
            f = os.fdopen(fd, "w", encoding=encoding or "utf-8")
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt too: no temporary file left behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError, AttributeError):  # make the rename itself durable (POSIX)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
