"""Writing Sprout's state files so that an ordinary OS error is never "a bug in Sprout" (issue 20.6).

* :func:`write_files` writes one or more files all-or-nothing: each to a temporary file beside it, flushed
  and ``fsync``-ed, then renamed over the target (a rename within one folder is atomic); if any step fails,
  every target is as it was before (earlier renames are rolled back from their saved copies).
* :func:`remove_files` deletes files, restoring them if a later deletion fails.
* :func:`locked` serialises writers of one folder across processes with a ``filelock`` lock file.
* :func:`storage_error` turns an :class:`OSError` into a :class:`~sprout_core.errors.StorageError` whose
  message names the folder, what happened (read-only, full disk, no permission, …) and what to do.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import threading
from pathlib import Path
from typing import Iterator

import filelock

from sprout_core.errors import StorageError

#: seconds a writer waits for another process's lock on the same folder before it gives up
LOCK_TIMEOUT_S = 30.0

_ADVICE = {
    errno.EROFS: ("the folder is on a read-only file system",
                  "set SPROUT_STATE_DIR to a writable folder, or remount it writable"),
    errno.EACCES: ("permission denied", "make the folder writable for this user (chmod u+w), or set "
                                        "SPROUT_STATE_DIR to a folder of yours"),
    errno.EPERM: ("operation not permitted", "make the folder writable for this user (chmod u+w), or set "
                                             "SPROUT_STATE_DIR to a folder of yours"),
    errno.ENOSPC: ("the disk is full", "free some space on that disk, or set SPROUT_STATE_DIR to a folder on "
                                       "another disk"),
    errno.EDQUOT: ("the disk quota is used up", "free some space, or set SPROUT_STATE_DIR to another folder"),
}


def storage_error(exc: OSError, folder: Path | str, action: str) -> StorageError:
    """A :class:`StorageError` for ``exc`` while ``action`` (e.g. "store the MY-LAB 2024 trace") in ``folder``."""
    what, todo = _ADVICE.get(exc.errno or 0, (exc.strerror or str(exc), "check the folder and try again"))
    return StorageError(f"Could not {action} in {folder}: {what}. Nothing was changed; {todo}.")


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not supported here (e.g. some file systems): the rename itself is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass  # a directory fsync is best effort; the data files themselves were fsync-ed
    finally:
        os.close(fd)


def _write_tmp(path: Path, data: bytes) -> Path:
    tmp = _tmp_name(path)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def _backup(path: Path) -> Path:
    """A second name for ``path``'s current content (a hard link, else a copy), to roll a rename back."""
    backup = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.bak")
    try:
        os.link(path, backup)
    except OSError:
        shutil.copy2(path, backup)
    return backup


def write_files(files: list[tuple[Path, bytes]], action: str) -> None:
    """Write every ``(path, data)`` or none (see the module doc). Raises :class:`StorageError`."""
    if not files:
        return
    folder = files[0][0].parent
    tmps: list[Path] = []
    saved: list[tuple[Path, Path | None]] = []  # (target, backup of its old content or None)
    try:
        for path, data in files:
            tmps.append(_write_tmp(path, data))
        for (path, _), tmp in zip(files, tmps):
            backup = _backup(path) if path.exists() else None
            saved.append((path, backup))
            os.replace(tmp, path)
        _fsync_dir(folder)
    except OSError as exc:
        for path, backup in reversed(saved):  # put back what was renamed over
            with contextlib.suppress(OSError):
                if backup is not None and backup.exists():
                    os.replace(backup, path)
                elif backup is None and path.exists():
                    path.unlink()
        raise storage_error(exc, folder, action) from None
    finally:
        for p in tmps:
            with contextlib.suppress(OSError):
                if p.exists():
                    p.unlink()
        for _, backup in saved:
            with contextlib.suppress(OSError):
                if backup is not None and backup.exists():
                    backup.unlink()


def remove_files(paths: list[Path], action: str) -> None:
    """Delete every existing path or none: each is first renamed aside, then the set is deleted."""
    paths = [p for p in paths if p.exists()]
    if not paths:
        return
    folder = paths[0].parent
    moved: list[tuple[Path, Path]] = []
    try:
        for p in paths:
            aside = p.with_name(f".{p.name}.{os.getpid()}.{threading.get_ident()}.del")
            os.replace(p, aside)
            moved.append((p, aside))
    except OSError as exc:
        for p, aside in reversed(moved):
            with contextlib.suppress(OSError):
                os.replace(aside, p)
        raise storage_error(exc, folder, action) from None
    for _, aside in moved:
        with contextlib.suppress(OSError):
            aside.unlink()


def ensure_folder(folder: Path, action: str) -> Path:
    """``folder``, created if needed; :class:`StorageError` (naming it) when that is refused."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, folder, action) from None
    return folder


@contextlib.contextmanager
def locked(folder: Path, action: str, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold ``<folder>/.lock`` (a ``filelock`` lock, across processes and threads) while the block runs.

    Raises :class:`StorageError` when another process holds it longer than ``timeout_s`` or the lock file
    cannot be created (read-only folder, …)."""
    ensure_folder(folder, action)
    lock = filelock.FileLock(str(folder / ".lock"), timeout=timeout_s)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise StorageError(f"Could not {action} in {folder}: another Sprout process has held its lock for "
                           f"{timeout_s:.0f} s. Nothing was changed; wait for it to finish and try again.") from None
    except OSError as exc:
        raise storage_error(exc, folder, action) from None
    try:
        yield
    finally:
        lock.release()
