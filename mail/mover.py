"""Switching foldering and fast storage while the farm serves: the mover.

``sipfarm domain set`` changes a domain's account foldering or fast storage index,
or the store's domain foldering, in four steps:

1. the settings file gets the new shape and, under ``moving_from``, the old one
   (`mail.foldering`); from then on every reader looks at both places
   (`mail.store`, the new one first);
2. the mover waits `MOVE_GRACE` seconds: longer than `mail.shapes.CHECK_INTERVAL`,
   so that every process that serves the store has seen step 1 before anything
   moves (a process that still believed in the old shape alone could miss an
   account that moved);
3. it moves every object from its old place to its new one, one at a time:
   a directory by one ``rename`` (atomic on one file system: the account is at
   one place or the other, never nowhere), a fast storage file by ``link`` then
   ``unlink`` (never over a file that is there: a member that wrote the account
   at its new place during the move wrote a newer file) or, across file systems
   (a fast volume mounted elsewhere), by a copy to a temporary file linked into
   place;
4. ``os.sync()``, then the settings file without ``moving_from``.

Every step can be done again: a crash leaves ``moving_from`` in the settings
file, readers keep looking at both places, and `Mover.finish` (run by the next
``sipfarm domain set``, and by `finish_pending` at the start of a member) moves
what is left.  One move runs at a time in a store: the lock file
``<root>/SharedDomains.moving`` names the host and the process that holds it; a
lock left by a dead process of this host is taken over.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import AccountStoreError
from .foldering import FOLDER_SUFFIX, DomainShape, Method, Shape, StoreShape, check_fast
from .layout import FAST, INFO, SETTINGS
from .shapes import CHECK_INTERVAL
from .store import AccountStore, fsync_dir, write_atomic

logger = logging.getLogger(__name__)

#: Seconds between writing the new shape and the first move (see the module docstring).
MOVE_GRACE = 2 * CHECK_INTERVAL + 0.5
LOCK_FILE = "SharedDomains.moving"
#: How often (seconds) the progress callback hears from a running move.
PROGRESS_EVERY = 1.0


class MoveRunning(AccountStoreError):
    """Another process is moving this store's directories."""


@dataclass(frozen=True, slots=True)
class MoveReport:
    """One finished move: what moved (a domain's accounts, or the domains), how many, how long."""

    what: str
    moved: int
    seconds: float


class Mover:
    """Switches a domain's or the store's shape and moves the directories to match."""

    def __init__(
        self,
        store: AccountStore,
        *,
        grace: float = MOVE_GRACE,
        progress: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.layout = store.layout
        self.grace = grace
        self._progress = progress
        self._sleep = sleep
        self._last_progress = 0.0

    # -- what the CLI calls

    def set_domain(
        self, domain: str, *, account_foldering: Method | None = None, fast: int | None = None
    ) -> list[MoveReport]:
        """Give ``domain`` a new account foldering and/or fast index; move its accounts."""
        with self._lock():
            reports = self._finish()
            current = self.store.domain_shape(domain)
            foldering = (
                current.account_foldering if account_foldering is None else account_foldering
            )
            index = current.fast if fast is None else fast
            check_fast(index, self.layout.shapes.store().domain_foldering, foldering)
            if (foldering, index) == (current.account_foldering, current.fast):
                return reports
            pending = replace(
                current,
                account_foldering=foldering,
                fast=index,
                moving_from=(current.account_foldering, current.fast),
            )
            self.store.write_domain_shape(domain, pending)
            self._wait()
            reports.append(self._move_accounts(domain, pending))
            return reports

    def set_store(self, foldering: Method) -> list[MoveReport]:
        """Give the store a new domain foldering; move every domain."""
        with self._lock():
            reports = self._finish()
            current = self.layout.shapes.store()
            if foldering == current.domain_foldering:
                return reports
            for domain in self.store.domains():
                shape = self.store.domain_shape(domain)
                try:
                    check_fast(shape.fast, foldering, shape.account_foldering)
                except ValueError as exc:
                    raise type(exc)(f"domain {domain}: {exc}") from None
            pending = replace(
                current, domain_foldering=foldering, moving_from=current.domain_foldering
            )
            self._write_store_shape(pending)
            self._wait()
            reports.append(self._move_domains(pending))
            return reports

    def finish(self) -> list[MoveReport]:
        """Finish the moves a crash (or a running ``set`` elsewhere) left pending."""
        with self._lock():
            return self._finish()

    # -- the moves

    def _finish(self) -> list[MoveReport]:
        reports = []
        self.store.shapes.forget()
        store = self.layout.shapes.store()
        if store.moving_from is not None:
            reports.append(self._move_domains(store))
        for domain in self.store.domains():
            shape = self.layout.shapes.domain(domain)
            if shape.moving_from is not None:
                reports.append(self._move_accounts(domain, shape))
        return reports

    def _move_accounts(self, domain: str, shape: DomainShape) -> MoveReport:
        """Every account of ``domain`` from ``shape.moving_from`` to ``shape``."""
        assert shape.moving_from is not None
        started = time.monotonic()
        folders = self.layout.shapes.store().domain_foldering
        old = Shape(folders, *shape.moving_from)
        new = Shape(folders, shape.account_foldering, shape.fast)
        base = self.store.domain_path(domain)
        users = self._users(base, (old.account_foldering, new.account_foldering))
        emptied: set[Path] = set()
        moved = 0
        for n, user in enumerate(users, 1):
            moved += self._move_account(user, domain, old, new, emptied)
            self._report(f"{domain}: {n}/{len(users)} accounts")
        os.sync()
        prune(emptied, self.layout.shared_domains)
        self.store.write_domain_shape(domain, replace(shape, moving_from=None))
        report = MoveReport(domain, moved, time.monotonic() - started)
        logger.info("domain %s: %d accounts moved in %.1f s", domain, moved, report.seconds)
        return report

    def _move_account(
        self, user: str, domain: str, old: Shape, new: Shape, emptied: set[Path]
    ) -> int:
        layout = self.layout
        old_dir = layout.account_dir_in(user, domain, old)
        new_dir = layout.account_dir_in(user, domain, new)

        def move_files() -> int:
            count = 0
            for kind in (SETTINGS, INFO):
                source = layout.file_in(kind, user, domain, old)
                count += move_file(source, layout.file_in(kind, user, domain, new))
                emptied.add(source.parent)
            return count

        if not old.fast and not new.fast:
            count = move_tree(old_dir, new_dir)
        elif old.fast and not new.fast:  # the files come into the account directory
            count = move_tree(old_dir, new_dir) + move_files()
        else:  # the files go to (or stay on) fast storage first, then the directory moves
            count = move_files() + move_tree(old_dir, new_dir)
        emptied.add(old_dir.parent)
        return min(count, 1)

    def _move_domains(self, store: StoreShape) -> MoveReport:
        """Every domain from ``store.moving_from`` foldering to ``store.domain_foldering``."""
        assert store.moving_from is not None
        started = time.monotonic()
        old_folders, new_folders = store.moving_from, store.domain_foldering
        domains = self.store.domains()
        emptied: set[Path] = set()
        moved = 0
        for n, domain in enumerate(domains, 1):
            shape = self.layout.shapes.domain(domain)
            old = Shape(old_folders, shape.account_foldering, shape.fast)
            new = Shape(new_folders, shape.account_foldering, shape.fast)
            old_dir = self.layout.domain_dir_in(domain, old_folders)
            new_dir = self.layout.domain_dir_in(domain, new_folders)
            if shape.fast:
                files_emptied: set[Path] = set()
                moved += self._move_fast_files(domain, old, new, old_dir, new_dir, files_emptied)
                prune(files_emptied, self.layout.shared_domains)
            moved += move_tree(old_dir, new_dir)
            emptied.add(old_dir.parent)
            self.store.shapes.forget(domain)
            self._report(f"{n}/{len(domains)} domains")
        os.sync()
        prune(emptied, self.layout.shared_domains)
        self._write_store_shape(replace(store, moving_from=None))
        report = MoveReport("domains", moved, time.monotonic() - started)
        logger.info("%d domains moved in %.1f s", len(domains), report.seconds)
        return report

    def _move_fast_files(
        self, domain: str, old: Shape, new: Shape, old_dir: Path, new_dir: Path, emptied: set[Path]
    ) -> int:
        """The fast files of ``domain`` that its directory's rename does not carry."""
        users = self._users(old_dir, (old.account_foldering,)) + self._users(
            new_dir, (new.account_foldering,)
        )
        moved = 0
        for user in sorted(set(users)):
            for kind in (SETTINGS, INFO):
                source = self.layout.file_in(kind, user, domain, old)
                target = self.layout.file_in(kind, user, domain, new)
                if _relative(source, old_dir) is not None and _relative(
                    source, old_dir
                ) == _relative(target, new_dir):
                    continue  # inside the domain directory, at the same place in it
                moved += move_file(source, target)
                emptied.add(source.parent)
        return moved

    def _users(self, base: Path, methods: tuple[Method, ...]) -> list[str]:
        found: set[str] = set()
        for method in dict.fromkeys(methods):
            for path in base.glob(self.layout.account_pattern(method)):
                user = self.layout.account_of(path, method)
                if user is not None:
                    found.add(user)
        return sorted(found)

    # -- helpers

    def _write_store_shape(self, shape: StoreShape) -> None:
        self.layout.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self.layout.store_settings_path, bytes(shape))
        self.store.shapes.forget()

    def _wait(self) -> None:
        if self.grace > 0:
            self._say(f"waiting {self.grace:g} s for every member to see the new layout")
            self._sleep(self.grace)

    def _report(self, text: str) -> None:
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_EVERY:
            self._last_progress = now
            self._say(text)

    def _say(self, text: str) -> None:
        if self._progress is not None:
            self._progress(text)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        path = self.layout.root / LOCK_FILE
        me = f"{socket.gethostname()} {os.getpid()}\n"
        self.layout.root.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if not _stale(path):
                    holder = path.read_text(errors="replace").strip()
                    raise MoveRunning(
                        f"a move is running ({holder}); if it is not, remove {path}"
                    ) from None
                logger.warning("taking over the move lock %s of a dead process", path)
                path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(me)
            break
        else:
            raise MoveRunning(f"cannot take the move lock {path}")
        try:
            yield
        finally:
            path.unlink(missing_ok=True)


def finish_pending(store: AccountStore) -> list[MoveReport]:
    """Finish a move a crash left pending (a member calls this at start, in a thread)."""
    store.shapes.forget()
    if not _pending(store):
        return []
    try:
        return Mover(store, grace=MOVE_GRACE).finish()
    except MoveRunning as exc:
        logger.info("not finishing the pending move: %s", exc)
        return []


def _pending(store: AccountStore) -> bool:
    if store.layout.shapes.store().moving_from is not None:
        return True
    return any(store.layout.shapes.domain(d).moving_from is not None for d in store.domains())


def _stale(path: Path) -> bool:
    """True when the lock at ``path`` was taken by a process of this host that is gone."""
    try:
        host, pid = path.read_text().split()
        pid_n = int(pid)
    except (OSError, ValueError):
        return False
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid_n, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _relative(path: Path, base: Path) -> Path | None:
    try:
        return path.relative_to(base)
    except ValueError:
        return None


# -- moving one object


def move_file(source: Path, target: Path) -> int:
    """Move file ``source`` to ``target`` unless one is there (then drop ``source``): 1 if moved.

    ``link`` then ``unlink``: at every instant the file is at one of the two places
    (or both, with the same bytes).  Across file systems the bytes are copied to
    a temporary file beside ``target`` (fsync) and linked into place.
    """
    if source == target:
        return 0
    for attempt in range(2):
        try:
            os.link(source, target)
            break
        except FileExistsError:
            break  # a newer file (written at the new place during the move) wins
        except FileNotFoundError:
            if not source.exists():
                return 0
            if attempt:
                raise
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
                raise
            if not _copy_into_place(source, target):
                return 0
            break
    with contextlib.suppress(FileNotFoundError):
        os.unlink(source)
    return 1


def _copy_into_place(source: Path, target: Path) -> bool:
    try:
        data = source.read_bytes()
    except FileNotFoundError:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.move.tmp")
    with open(temp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(temp, target)
    except FileExistsError:
        pass
    finally:
        os.unlink(temp)
    return True


def move_tree(source: Path, target: Path) -> int:
    """Move directory ``source`` to ``target`` (1 if something moved).

    One ``rename`` when ``target`` is not there (or is an empty directory);
    otherwise, and across file systems, its entries one by one into ``target``
    (directories the same way, files by `move_file`), then ``source`` goes.
    """
    if source == target:
        return 0
    for attempt in range(2):
        try:
            os.rename(source, target)
            return 1
        except FileNotFoundError:
            if not source.exists():
                return 0
            if attempt:
                raise
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                target.mkdir(parents=True, exist_ok=True)
            elif exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            _merge(source, target)
            return 1
    return 0


def _merge(source: Path, target: Path) -> None:
    for _ in range(3):  # again if a writer put something in ``source`` meanwhile
        for entry in os.scandir(source):
            child = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                move_tree(child, target / entry.name)
            else:
                move_file(child, target / entry.name)
        try:
            os.rmdir(source)
            fsync_dir(target.parent)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY:
                raise
    logger.warning("%s still has entries after its move to %s", source, target)


def prune(dirs: set[Path], stop: Path) -> None:
    """Remove the empty folders of ``dirs`` and above them, up to ``stop`` (kept).

    Folders are ``*.sub``, ``fast`` and what is inside a ``fast`` tree: an account
    or domain directory stays even when it is empty.
    """
    for path in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        while path != stop and stop in path.parents and _is_folder(path, stop):
            try:
                os.rmdir(path)
            except OSError:  # not empty, not there, a mount point: leave it
                break
            path = path.parent


def _is_folder(path: Path, stop: Path) -> bool:
    if path.name.endswith(FOLDER_SUFFIX) or path.name == FAST:
        return True
    return FAST in path.relative_to(stop).parts[:-1]
