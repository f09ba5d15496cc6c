"""Where domains and accounts live on the shared storage (pure path computation).

The seed's layout ("CommuniGate Shared File System structure and settings" and
"APPENDIX Fast Storage Optimization")::

    <root>/SharedDomains/<domain folders>/<domain>/<account folders>/<account>.macnt/

with ``account.settings`` and ``account.info`` inside the account directory, or,
with a fast storage index N on the domain, at::

    <root>/<the first N elements>/fast/<the other elements>/<account>.settings|.info

The elements are those of the account directory's path from the base directory
(``root``) without the ``<account>.macnt`` element: ``SharedDomains`` is element
1, then the domain folders, the domain, the account folders.  "Insert ``fast``
after the Nth path element and remove the ``accountName.macnt`` element": both of
the seed's examples hold with this count (``SharedDomains/fast/company.com/a.sub/
l.sub/albert.settings`` is index 1; the first example, ``SharedDomains/company.com/
fast/a.sub/albert.settings``, is index 2: that example's "for instance 1" stands
for "a non-zero value").  The account directory stays for everything else.

Foldering methods and the letters of a folder are `mail.foldering`'s.  The
choices come from a `Shapes` port (the store's and the domain's settings files,
read by `mail.shapes`); while a move runs an account may be in the old shape or
the new one, so every path has a plural form listing the places to look, the
current shape's first.  Settings files::

    <root>/SharedDomains.settings                     the store's domain foldering
    <root>/SharedDomains/…/<domain>/domain.settings   a domain's account foldering, fast index

A missing file means no foldering and no fast storage.  Names are validated
(`mail.names`) before they become path elements.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .foldering import NONE, DomainShape, Method, Shape, StoreShape, shapes
from .names import account_name, domain_name

SHARED_DOMAINS = "SharedDomains"
ACCOUNT_SUFFIX = ".macnt"
SETTINGS_FILE = "account.settings"
INFO_FILE = "account.info"
FAST = "fast"
STORE_SETTINGS = SHARED_DOMAINS + ".settings"
DOMAIN_SETTINGS = "domain.settings"
#: The two account files that fast storage takes out of the account directory.
SETTINGS = "settings"
INFO = "info"


class Shapes(Protocol):
    """The store's and each domain's layout choices (`mail.shapes` reads them from files)."""

    def store(self) -> StoreShape: ...

    def domain(self, domain: str) -> DomainShape: ...


@dataclass(frozen=True, slots=True)
class FixedShapes:
    """`Shapes` that never change: no foldering, no fast storage unless given."""

    store_shape: StoreShape = field(default_factory=StoreShape)
    domain_shape: DomainShape = field(default_factory=DomainShape)

    def store(self) -> StoreShape:
        return self.store_shape

    def domain(self, domain: str) -> DomainShape:
        return self.domain_shape


@dataclass(frozen=True, slots=True)
class Layout:
    """The storage layout under ``root`` (the server's base/data directory)."""

    root: Path
    shapes: Shapes = field(default_factory=FixedShapes)

    @property
    def shared_domains(self) -> Path:
        return self.root / SHARED_DOMAINS

    @property
    def store_settings_path(self) -> Path:
        return self.root / STORE_SETTINGS

    # -- explicit shapes (what the mover and the settings reader use)

    def domain_dir_in(self, domain: str, foldering: Method) -> Path:
        name = domain_name(domain)
        return self.shared_domains.joinpath(*foldering.folders(name), name)

    def domain_settings_path_in(self, domain: str, foldering: Method) -> Path:
        return self.domain_dir_in(domain, foldering) / DOMAIN_SETTINGS

    def account_dir_in(self, user: str, domain: str, shape: Shape) -> Path:
        name = account_name(user)
        base = self.domain_dir_in(domain, shape.domain_foldering)
        return base.joinpath(*shape.account_foldering.folders(name), name + ACCOUNT_SUFFIX)

    def file_in(self, kind: str, user: str, domain: str, shape: Shape) -> Path:
        """Where ``account.<kind>`` (`SETTINGS` or `INFO`) of the account is in ``shape``."""
        if not shape.fast:
            return self.account_dir_in(user, domain, shape) / f"account.{kind}"
        name, dname = account_name(user), domain_name(domain)
        elements = [
            SHARED_DOMAINS,
            *shape.domain_foldering.folders(dname),
            dname,
            *shape.account_foldering.folders(name),
        ]
        n = min(shape.fast, len(elements))
        return self.root.joinpath(*elements[:n], FAST, *elements[n:], f"{name}.{kind}")

    def fast_dir_in(self, domain: str, shape: Shape) -> Path | None:
        """The domain's own ``fast`` tree when the index puts ``fast`` above the domain.

        With index 1, ``SharedDomains/fast/company.com/`` holds only company.com's
        files; with an index that falls at or after the domain element the fast
        files are inside the domain directory (None).
        """
        name = domain_name(domain)
        folders = shape.domain_foldering.folders(name)
        if not 0 < shape.fast < 2 + len(folders):
            return None
        elements = [SHARED_DOMAINS, *folders, name]
        return self.root.joinpath(*elements[: shape.fast], FAST, *elements[shape.fast :])

    # -- the current shape and the places to look while a move runs

    def shapes_of(self, domain: str) -> tuple[Shape, ...]:
        """The shapes the domain's accounts may be in, the current one first."""
        return shapes(self.shapes.store(), self.shapes.domain(domain_name(domain)))

    def domain_foldering(self) -> tuple[Method, ...]:
        """The domain folderings a domain may be in, the current one first."""
        store = self.shapes.store()
        if store.moving_from is None or store.moving_from == store.domain_foldering:
            return (store.domain_foldering,)
        return (store.domain_foldering, store.moving_from)

    def domain_dir(self, domain: str) -> Path:
        return self.domain_dir_in(domain, self.shapes.store().domain_foldering)

    def domain_dirs(self, domain: str) -> list[Path]:
        return [self.domain_dir_in(domain, m) for m in self.domain_foldering()]

    def account_dir(self, user: str, domain: str) -> Path:
        return self.account_dir_in(user, domain, self.shapes_of(domain)[0])

    def account_dirs(self, user: str, domain: str) -> list[Path]:
        return _unique(self.account_dir_in(user, domain, s) for s in self.shapes_of(domain))

    def settings_path(self, user: str, domain: str) -> Path:
        return self.file_in(SETTINGS, user, domain, self.shapes_of(domain)[0])

    def settings_paths(self, user: str, domain: str) -> list[Path]:
        return _unique(self.file_in(SETTINGS, user, domain, s) for s in self.shapes_of(domain))

    def info_path(self, user: str, domain: str) -> Path:
        """The account's changing state (its registered bindings …), beside its settings."""
        return self.file_in(INFO, user, domain, self.shapes_of(domain)[0])

    def info_paths(self, user: str, domain: str) -> list[Path]:
        return _unique(self.file_in(INFO, user, domain, s) for s in self.shapes_of(domain))

    # -- listing

    def domain_pattern(self, foldering: Method | None = None) -> str:
        """The glob, relative to `shared_domains`, that matches every domain directory."""
        method = self.shapes.store().domain_foldering if foldering is None else foldering
        return "/".join((*method.pattern(), "*"))

    def account_pattern(self, foldering: Method = NONE) -> str:
        """The glob, relative to a domain directory, that matches every account directory."""
        return "/".join((*foldering.pattern(), "*" + ACCOUNT_SUFFIX))

    def domain_of(self, path: Path, foldering: Method | None = None) -> str | None:
        """The domain whose directory is ``path`` (a `domain_pattern` match), else None."""
        method = self.shapes.store().domain_foldering if foldering is None else foldering
        try:
            name = domain_name(path.name)
        except ValueError:
            return None
        if name != path.name or not _folders_match(path, method.folders(name)):
            return None
        return name

    def account_of(self, path: Path, foldering: Method = NONE) -> str | None:
        """The account whose directory is ``path`` (an `account_pattern` match), else None."""
        if not path.name.endswith(ACCOUNT_SUFFIX):
            return None
        stem = path.name[: -len(ACCOUNT_SUFFIX)]
        try:
            name = account_name(stem)
        except ValueError:
            return None
        if name != stem or not _folders_match(path, foldering.folders(name)):
            return None
        return name


def _folders_match(path: Path, folders: tuple[str, ...]) -> bool:
    if not folders:
        return True
    parts = path.parts
    return len(parts) > len(folders) and parts[-1 - len(folders) : -1] == folders


def _unique(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p not in out:
            out.append(p)
    return out
