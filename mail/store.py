"""The account store on a (shared) file system: the edge behind `mail.api.Accounts`.

Paths come from `mail.layout.Layout`, its foldering and fast storage choices from
the settings files through `mail.shapes.ShapeCache`.  Every write of settings is
atomic and durable: a temp file in the target's directory, fsync, rename over the
target, fsync the directory.  Removals rename the directory to a hidden tombstone
first (the commit point), then delete it.  No locks: DESIGN.md gives each account
one owner at a time.

While `mail.mover` moves a domain from one shape to another, every account is
in exactly one of the places `Layout.settings_paths` (and ``info_paths``,
``account_dirs``, ``domain_dirs``) lists, and moves from one to another by a
rename or a link-then-unlink.  So a read looks at every place, twice when there
are several (the second pass finds what moved between two looks; outside a move
there is one place and one look), and a write goes:

- into the account directory that exists (the current shape's first): a
  directory rename carries the file with it, and a write racing the rename fails
  with ENOENT and is done again at the new place;
- with fast storage, to the current shape's fast path (its folders made on the
  way); the mover moves a file only where none is (link, never rename over), so
  it never puts an older file over a newer one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .api import AccountRecord
from .errors import AccountExists, DomainExists, NoSuchAccount, NoSuchDomain
from .foldering import NONE, DomainShape, Method, check_fast
from .layout import INFO, SETTINGS, Layout
from .names import account_name, domain_name
from .settings import AccountSettings, BadSettings
from .shapes import ShapeCache

logger = logging.getLogger(__name__)


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` (creations, renames, removals) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    fsync_dir(path.parent)


def remove_tree(path: Path) -> None:
    """Remove directory ``path``: rename it to a hidden tombstone (durably), then delete."""
    tomb = path.with_name(f".{path.name}.removed-{secrets.token_hex(4)}")
    os.rename(path, tomb)
    fsync_dir(path.parent)
    shutil.rmtree(tomb)


#: Attempts of a write that races a move (each attempt follows the account to its new place).
WRITE_ATTEMPTS = 4


def read_first(paths: list[Path]) -> bytes | None:
    """The first of ``paths`` that can be read; twice over them when there are several."""
    found = read_where(paths)
    return None if found is None else found[1]


def read_where(paths: list[Path]) -> tuple[Path, bytes] | None:
    """:func:`read_first`, with the path it read (for an error that must name the file)."""
    for path in paths if len(paths) == 1 else paths * 2:
        try:
            return path, path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            continue
    return None


def first_existing(paths: list[Path], *, is_dir: bool = False) -> Path | None:
    """The first of ``paths`` that exists; twice over them when there are several."""
    for path in paths if len(paths) == 1 else paths * 2:
        if path.is_dir() if is_dir else path.exists():
            return path
    return None


def write_fast(path: Path, data: bytes, writer: str) -> None:
    """Replace ``path`` by a rename of a temporary file named after ``writer`` (no fsync)."""
    temp = path.with_name(f".{path.name}.{writer}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(temp, path)


class AccountStore:
    """`mail.api.Accounts` on the seed's ``SharedDomains`` tree under ``root``."""

    def __init__(
        self, root: Path, layout: Layout | None = None, *, shapes: ShapeCache | None = None
    ) -> None:
        self.shapes = shapes if shapes is not None else ShapeCache(root)
        self.layout = layout if layout is not None else Layout(root, self.shapes)

    # -- domains

    def add_domain(self, domain: str, *, account_foldering: Method = NONE, fast: int = 0) -> None:
        domain = domain_name(domain)
        if first_existing(self.layout.domain_dirs(domain), is_dir=True) is not None:
            raise DomainExists(domain)
        check_fast(fast, self.layout.shapes.store().domain_foldering, account_foldering)
        path = self.layout.domain_dir(domain)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir()
        except FileExistsError:
            raise DomainExists(domain) from None
        shape = DomainShape(account_foldering, fast)
        if not shape.is_default:
            self.write_domain_shape(domain, shape)
        fsync_dir(path.parent)
        logger.info("domain %s added", domain)

    def remove_domain(self, domain: str) -> None:
        domain = domain_name(domain)
        self.domain_path(domain)
        shapes = self.layout.shapes_of(domain)
        for path in self.layout.domain_dirs(domain):
            with contextlib.suppress(FileNotFoundError):
                remove_tree(path)
        for shape in shapes:
            fast = self.layout.fast_dir_in(domain, shape)
            if fast is not None and fast.is_dir():
                remove_tree(fast)
        self.shapes.forget(domain)
        logger.info("domain %s removed", domain)

    def domains(self) -> list[str]:
        base = self.layout.shared_domains
        if not base.is_dir():
            return []
        found: set[str] = set()
        for method in self.layout.domain_foldering():
            for path in base.glob(self.layout.domain_pattern(method)):
                name = self.layout.domain_of(path, method)
                if name is not None and path.is_dir():
                    found.add(name)
        return sorted(found)

    def domain_shape(self, domain: str) -> DomainShape:
        """The domain's layout choices (NoSuchDomain without the domain)."""
        self.domain_path(domain)
        return self.layout.shapes.domain(domain_name(domain))

    def write_domain_shape(self, domain: str, shape: DomainShape) -> None:
        """Write ``domain.settings`` (in the directory the domain is in now)."""
        path = self.domain_path(domain) / "domain.settings"
        write_atomic(path, bytes(shape))
        self.shapes.forget(domain)

    # -- accounts

    def add_account(self, user: str, domain: str, password: str) -> None:
        user, domain = account_name(user), domain_name(domain)
        self.domain_path(domain)
        if first_existing(self.layout.settings_paths(user, domain)) is not None:
            raise AccountExists(f"{user}@{domain}")
        account_dir = self.layout.account_dir(user, domain)
        account_dir.mkdir(parents=True, exist_ok=True)
        fsync_dir(account_dir.parent)
        settings_path = self.layout.settings_path(user, domain)
        settings_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(settings_path, bytes(AccountSettings.new(user, domain, password)))
        logger.info("account %s@%s added", user, domain)

    def add_accounts(
        self,
        accounts: Iterable[tuple[str, str, str]],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Add many accounts ``(user, domain, password)`` fast: one sync at the end.

        Every account is checked first (its domain is there, it is not), so a
        refusal writes nothing.  Each settings file is then written to a
        temporary name and renamed into place without an fsync; one
        ``os.sync()`` at the end makes the whole batch durable.  A crash before
        it may leave some accounts of the batch missing, never a half-written one
        visible under its name.
        """
        rows = [(account_name(u), domain_name(d), pw) for u, d, pw in accounts]
        shapes = {d: self.layout.shapes_of(d) for d in {d for _, d, _ in rows}}
        for domain in shapes:
            self.domain_path(domain)
        plan = []
        for user, domain, password in rows:
            places = [self.layout.file_in(SETTINGS, user, domain, s) for s in shapes[domain]]
            if any(p.exists() for p in places):
                raise AccountExists(f"{user}@{domain}")
            account_dir = self.layout.account_dir_in(user, domain, shapes[domain][0])
            plan.append((account_dir, places[0], user, domain, password))
        parents = {a.parent for a, *_ in plan} | {p.parent for _, p, *_ in plan}
        for parent in sorted(parents):
            parent.mkdir(parents=True, exist_ok=True)

        for n, (account_dir, settings_path, user, domain, password) in enumerate(plan, 1):
            account_dir.mkdir(exist_ok=True)
            write_fast(settings_path, bytes(AccountSettings.new(user, domain, password)), "import")
            if progress is not None and n % 10_000 == 0:
                progress(n)
        os.sync()
        logger.info("%d accounts added", len(rows))
        return len(rows)

    def remove_account(self, user: str, domain: str) -> None:
        user, domain = account_name(user), domain_name(domain)
        self.domain_path(domain)
        if first_existing(self.layout.settings_paths(user, domain)) is None:
            raise NoSuchAccount(f"{user}@{domain}")
        for path in self.layout.account_dirs(user, domain):
            with contextlib.suppress(FileNotFoundError):
                remove_tree(path)
        # With fast storage the settings and the info live outside the account directory.
        for path in self.layout.settings_paths(user, domain) + self.layout.info_paths(user, domain):
            path.unlink(missing_ok=True)
        logger.info("account %s@%s removed", user, domain)

    def accounts(self, domain: str) -> list[str]:
        domain = domain_name(domain)
        self.domain_path(domain)
        found: set[str] = set()
        methods = _unique_methods(s.account_foldering for s in self.layout.shapes_of(domain))
        for base in self.layout.domain_dirs(domain):
            for method in methods:
                for path in base.glob(self.layout.account_pattern(method)):
                    user = self.layout.account_of(path, method)
                    if user is not None:
                        found.add(user)
        return sorted(
            user
            for user in found
            if first_existing(self.layout.settings_paths(user, domain)) is not None
        )

    def set_password(self, user: str, domain: str, password: str) -> None:
        """Give the account a new password; this also repairs damaged settings.

        An ``account.settings`` that cannot be read back (truncated, overwritten)
        cannot be repaired from what is left: the HA1s are all it holds of the
        password.  The member refuses the account meanwhile; a new password is
        the operator's repair, and writes fresh settings (realm: the domain; keys
        the damaged file held beyond the realm and the HA1s are lost).
        """
        user, domain = account_name(user), domain_name(domain)
        try:
            settings = self._settings(user, domain)
        except BadSettings as exc:
            logger.warning("account %s@%s: damaged settings replaced: %s", user, domain, exc)
            settings = AccountSettings.new(user, domain, password)
        if settings is None:
            self.domain_path(domain)
            raise NoSuchAccount(f"{user}@{domain}")
        data = bytes(settings.with_password(user, password))
        self._write(SETTINGS, user, domain, lambda path: write_atomic(path, data))
        logger.info("account %s@%s password set", user, domain)

    def settings(self, user: str, domain: str) -> dict[str, Any]:
        """The account's own settings: what ``account.settings`` holds beside its realm
        and digest secrets (NoSuchAccount, BadSettings)."""
        user, domain = account_name(user), domain_name(domain)
        return dict(self._existing_settings(user, domain).other)

    def update_settings(self, user: str, domain: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Set the settings in ``changes`` (a None value removes one); the settings then.
        BadSettingsChange for the realm or the digest secrets (a password changes those)."""
        user, domain = account_name(user), domain_name(domain)
        settings = self._existing_settings(user, domain).with_changes(changes)
        data = bytes(settings)
        self._write(SETTINGS, user, domain, lambda path: write_atomic(path, data))
        logger.info("account %s@%s settings changed: %s", user, domain, ", ".join(sorted(changes)))
        return dict(settings.other)

    def _existing_settings(self, user: str, domain: str) -> AccountSettings:
        settings = self._settings(user, domain)
        if settings is None:
            self.domain_path(domain)  # NoSuchDomain before NoSuchAccount
            raise NoSuchAccount(f"{user}@{domain}")
        return settings

    def get(self, user: str, domain: str) -> AccountRecord | None:
        user, domain = account_name(user), domain_name(domain)
        settings = self._settings(user, domain)
        if settings is None:
            return None
        return AccountRecord(user=user, domain=domain, realm=settings.realm, ha1=settings.digest)

    # -- the account's info: state that changes while it is served (its bindings)

    def read_info(self, user: str, domain: str) -> bytes | None:
        """The account's ``account.info``, or None when it has none (or no such account)."""
        found = self.read_info_where(user, domain)
        return None if found is None else found[1]

    def read_info_where(self, user: str, domain: str) -> tuple[Path, bytes] | None:
        """:meth:`read_info` with the file it read (an error must name the file)."""
        return read_where(self.layout.info_paths(account_name(user), domain_name(domain)))

    def write_info(self, user: str, domain: str, data: bytes, *, writer: str) -> Path:
        """Replace the account's ``account.info`` atomically (NoSuchAccount without one);
        returns the path written.

        Written on the request path (a binding before its 200 OK), so it is the
        cheapest atomic replace: a temporary file named after ``writer`` (the one
        member that writes this account: its owner; no two writers share a name, so
        no random name and no O_EXCL retry), then a rename.  No fsync here: the file
        survives the death of the member (the page cache has it); the caller hands
        the path to :class:`mail.commit.GroupCommit`, which makes it survive a crash
        of the host before the answer that depends on it leaves.
        """
        user, domain = account_name(user), domain_name(domain)
        return self._write(INFO, user, domain, lambda path: write_fast(path, data, writer))

    # -- helpers

    def _write(self, kind: str, user: str, domain: str, put: Callable[[Path], None]) -> Path:
        """Write ``account.<kind>`` where the account is (see the module docstring); the
        path written."""
        shapes = self.layout.shapes_of(domain)
        current = shapes[0]
        if current.fast:
            if first_existing(self.layout.settings_paths(user, domain)) is None:
                raise NoSuchAccount(f"{user}@{domain}")
            path = self.layout.file_in(kind, user, domain, current)
            for _ in range(WRITE_ATTEMPTS):
                try:
                    put(path)
                    return path
                except (FileNotFoundError, NotADirectoryError):
                    path.parent.mkdir(parents=True, exist_ok=True)
            put(path)
            return path
        name = f"account.{kind}"
        dirs = self.layout.account_dirs(user, domain)
        for _ in range(WRITE_ATTEMPTS if len(dirs) > 1 else 1):
            for account_dir in dirs:
                try:
                    put(account_dir / name)
                    return account_dir / name
                except (FileNotFoundError, NotADirectoryError):
                    continue
        raise NoSuchAccount(f"{user}@{domain}")

    def domain_path(self, domain: str) -> Path:
        """The domain's directory where it is now, or raise NoSuchDomain."""
        path = first_existing(self.layout.domain_dirs(domain), is_dir=True)
        if path is None:
            raise NoSuchDomain(domain_name(domain))
        return path

    def _settings(self, user: str, domain: str) -> AccountSettings | None:
        """The account's settings, None without them; BadSettings, naming the file, when
        they cannot be read back."""
        found = read_where(self.layout.settings_paths(user, domain))
        if found is None:
            return None
        path, data = found
        try:
            return AccountSettings.parse(data)
        except BadSettings as exc:
            raise BadSettings(f"{path}: {exc}") from None


def _unique_methods(methods: Iterable[Method]) -> list[Method]:
    out: list[Method] = []
    for m in methods:
        if m not in out:
            out.append(m)
    return out
