"""Group commit of account files: fsync in batches, off the event loop (asyncio edge).

Issue 6 "durable bindings" and DESIGN.md "Account store": a registration's 200 OK
leaves only once its binding is on stable storage, and the cost of that must not
set the rate.  A write on the request path is the cheap atomic replace of
:func:`mail.store.write_fast` (a temporary file renamed over the target, no
fsync), after which the writer calls :meth:`GroupCommit.written`; whatever must
not leave before those files are durable is handed to :meth:`GroupCommit.after`.

One batch is made durable at a time, in a worker thread: each file written since
the previous batch is fsynced, then each directory that holds one (the rename);
a larger batch is flushed with one syncfs(2) per filesystem (:func:`fsync_paths`).
Files written while a batch is in flight form the next batch, so under load one
fsync round covers every registration of the last few milliseconds: the rate
costs one round per batch, not one per registration (the classic group commit
of databases' logs).  Callbacks run on the loop in the order they were given, so
answers keep the order of the requests.

A batch whose fsync fails (EIO, ENOSPC …) is logged and counted, and the
callbacks that waited for it are dropped, not run: what waited was an answer
that must not claim durability it does not have (the phone retransmits, and the
next write is tried afresh).  A file that is gone by the time of the fsync was
replaced or moved (a newer write, a foldering switch): whoever replaced it
makes its own copy durable.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["SYNCFS_FROM", "GroupCommit", "fsync_paths"]

logger = logging.getLogger(__name__)


#: From this many files on, a batch is flushed with one syncfs(2) per filesystem rather
#: than an fsync per file and per directory (0.5 ms each here: 1,000 registrations a
#: second of fsyncs alone; syncfs flushed 200 files in 6 ms).
SYNCFS_FROM = 4

_libc = ctypes.CDLL(None, use_errno=True)
_syncfs = getattr(_libc, "syncfs", None)  # Linux; elsewhere every file is fsynced


def _fsync(path: Path, flags: int = os.O_RDONLY) -> bool:
    """fsync ``path``; False when it is gone (replaced or moved: its new writer syncs it)."""
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return False
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def _syncfs_of(directory: Path) -> None:
    """syncfs(2) of the filesystem holding ``directory``: its data and metadata, all of it."""
    assert _syncfs is not None
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(directory))
    finally:
        os.close(fd)


def fsync_paths(files: Iterable[Path]) -> None:
    """Make ``files`` (each renamed into place) durable, with their directory entries.

    A few files: fsync each, then each directory holding one.  A batch: one
    syncfs per filesystem among them (the fast-storage volume may be another),
    which also flushes whatever else is dirty there (on a volume given to the
    account store, little else).  OSError when the storage fails.
    """
    files = list(files)
    if _syncfs is not None and len(files) >= SYNCFS_FROM:
        devices: dict[int, Path] = {}
        for path in files:
            try:
                devices.setdefault(os.stat(path.parent).st_dev, path.parent)
            except FileNotFoundError:
                continue  # moved since: its new writer syncs it
        for directory in devices.values():
            _syncfs_of(directory)
        return
    parents: dict[Path, None] = {}
    for path in files:
        if _fsync(path):
            parents[path.parent] = None
    for parent in parents:
        _fsync(parent, os.O_RDONLY | os.O_DIRECTORY)


class GroupCommit:
    """Batches of written files made durable one batch at a time (module docstring).

    ``sync`` is the function that makes a batch durable (``fsync_paths``); it runs
    in the loop's default executor.  ``enabled=False`` keeps the interface and
    syncs nothing: the benchmark's baseline without durability.
    """

    def __init__(
        self, sync: Callable[[list[Path]], None] = fsync_paths, *, enabled: bool = True
    ) -> None:
        self.sync = sync
        self.enabled = enabled
        self._open: dict[Path, None] = {}  # written since the batch in flight began
        self._open_waiters: list[Callable[[], None]] = []
        self._flying: asyncio.Future[None] | None = None
        self._flying_waiters: list[Callable[[], None]] = []
        self.counters: dict[str, int] = {}

    @property
    def pending(self) -> bool:
        """Whether something written is not durable yet (then answers wait)."""
        return bool(self._open) or self._flying is not None

    def written(self, path: Path) -> None:
        """``path`` was just written (renamed into place): durable with the next batch."""
        if self.enabled:
            self._open[path] = None

    def after(self, release: Callable[[], None]) -> None:
        """Run ``release`` once every file written so far is durable (now, when none waits)."""
        if self._open:
            self._open_waiters.append(release)
            self._start()
        elif self._flying is not None:
            self._flying_waiters.append(release)
        else:
            release()

    def _start(self) -> None:
        if self._flying is not None or not self._open:
            return
        batch = list(self._open)
        self._open.clear()
        self._flying_waiters, self._open_waiters = self._open_waiters, []
        loop = asyncio.get_running_loop()
        self._flying = loop.run_in_executor(None, self.sync, batch)
        self._flying.add_done_callback(functools.partial(self._done, files=len(batch)))

    def _done(self, flying: asyncio.Future[None], files: int) -> None:
        waiters, self._flying_waiters, self._flying = self._flying_waiters, [], None
        exc = flying.exception()
        if exc is None:
            self._count("batches")
            self.counters["files_synced"] = self.counters.get("files_synced", 0) + files
            for release in waiters:
                try:
                    release()
                except Exception:
                    logger.exception("group commit: a release failed")
        else:
            self._count("batches_failed")
            self.counters["answers_dropped"] = self.counters.get("answers_dropped", 0) + len(
                waiters
            )
            logger.error(
                "group commit of %d files failed, %d answers not sent: %s",
                files,
                len(waiters),
                exc,
            )
        self._start()

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1
