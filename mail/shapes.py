"""The layout choices read from the settings files, cached (the `mail.layout.Shapes` edge).

Every account lookup computes a path, and every path needs the store's domain
foldering and the domain's account foldering and fast index, so they are kept in
memory.  A cached file is looked at again (one ``stat``) at most every
``interval`` seconds (`CHECK_INTERVAL`, 1 s); it is read again when its inode,
modification time or size changed (the files are replaced by rename, so a
change is a new inode).  A change made by another process (``sipfarm domain
set``, another member) is therefore seen within ``interval``; the mover waits
longer than that (`mail.mover`) before it moves anything.  A process that
writes a settings file itself calls `ShapeCache.forget`.

A domain without ``domain.settings`` has the defaults (no foldering, no fast
storage); where its file is is found again at every check, so a domain that
moves (domain foldering switched) is followed.  A settings file that is not
what `mail.foldering` writes raises `mail.foldering.BadLayout` on every lookup
until it is repaired: a wrong guess would look for every account in the wrong
place.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from .foldering import DomainShape, StoreShape
from .layout import Layout
from .names import domain_name

logger = logging.getLogger(__name__)

#: Seconds between two looks at one settings file.
CHECK_INTERVAL = 1.0
#: Domains cached; past this the cache is emptied (it refills at one stat per domain).
MAX_DOMAINS = 100_000

T = TypeVar("T")
_Ident = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class _Entry(Generic[T]):
    value: T
    path: Path | None
    ident: _Ident | None
    checked: float


def _ident(path: Path) -> _Ident | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class ShapeCache:
    """`mail.layout.Shapes` from ``SharedDomains.settings`` and each ``domain.settings``."""

    def __init__(
        self,
        root: Path,
        *,
        interval: float = CHECK_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._layout = Layout(root)
        self._store: _Entry[StoreShape] | None = None
        self._domains: dict[str, _Entry[DomainShape]] = {}

    def forget(self, domain: str | None = None) -> None:
        """Read again at the next lookup (the store's file and ``domain``'s, or every one)."""
        self._store = None
        if domain is None:
            self._domains.clear()
        else:
            self._domains.pop(domain_name(domain), None)

    def store(self) -> StoreShape:
        now = self._clock()
        entry = self._store
        if entry is not None and now - entry.checked < self.interval:
            return entry.value
        path = self._layout.store_settings_path
        ident = _ident(path)
        if entry is not None and ident == entry.ident:
            self._store = _Entry(entry.value, path, ident, now)
            return entry.value
        value, ident = _read(path, StoreShape.parse, StoreShape())
        self._store = _Entry(value, path, ident, now)
        return value

    def domain(self, domain: str) -> DomainShape:
        now = self._clock()
        entry = self._domains.get(domain)
        if entry is not None and now - entry.checked < self.interval:
            return entry.value
        store = self.store()
        if entry is not None and entry.path is not None:
            ident = _ident(entry.path)
            if ident is not None and ident == entry.ident:
                self._domains[domain] = _Entry(entry.value, entry.path, ident, now)
                return entry.value
        value, path, ident = self._locate(domain, store)
        if len(self._domains) >= MAX_DOMAINS:
            self._domains.clear()
        self._domains[domain] = _Entry(value, path, ident, now)
        return value

    def _locate(
        self, domain: str, store: StoreShape
    ) -> tuple[DomainShape, Path | None, _Ident | None]:
        methods = [store.domain_foldering]
        if store.moving_from is not None and store.moving_from != store.domain_foldering:
            methods.append(store.moving_from)
        paths = [self._layout.domain_settings_path_in(domain, m) for m in methods]
        # Twice over the places: a file renamed between two looks is found the second time.
        for path in paths * (2 if len(paths) > 1 else 1):
            value, ident = _read(path, DomainShape.parse, None)
            if value is not None:
                return value, path, ident
        return DomainShape(), None, None


def _read(path: Path, parse: Callable[[bytes], T], default: T) -> tuple[T, _Ident | None]:
    """The parsed file and its identity, or ``default`` and None when there is none."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            data = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return default, None
    return parse(data), (st.st_ino, st.st_mtime_ns, st.st_size)
