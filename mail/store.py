"""The account store on a (shared) file system: the edge behind `mail.api.Accounts`.

Paths come from `mail.layout.Layout`.  Every write is atomic and durable: a temp
file in the target's directory, fsync, rename over the target, fsync the directory.
Removals rename the directory to a hidden tombstone first (the commit point), then
delete it.  No locks: DESIGN.md gives each account one owner at a time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from .api import AccountRecord
from .errors import AccountExists, DomainExists, NoSuchAccount, NoSuchDomain
from .layout import INFO_FILE, Layout
from .names import account_name, domain_name
from .settings import AccountSettings

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


class AccountStore:
    """`mail.api.Accounts` on the seed's ``SharedDomains`` tree under ``root``."""

    def __init__(self, root: Path, layout: Layout | None = None) -> None:
        self.layout = layout if layout is not None else Layout(root)

    # -- domains

    def add_domain(self, domain: str) -> None:
        path = self.layout.domain_dir(domain)
        if path.is_dir():
            raise DomainExists(domain_name(domain))
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir()
        except FileExistsError:
            raise DomainExists(domain_name(domain)) from None
        fsync_dir(path.parent)
        logger.info("domain %s added", path.name)

    def remove_domain(self, domain: str) -> None:
        path = self._domain_dir(domain)
        remove_tree(path)
        logger.info("domain %s removed", path.name)

    def domains(self) -> list[str]:
        base = self.layout.shared_domains
        if not base.is_dir():
            return []
        found = (self.layout.domain_of(p) for p in base.glob(self.layout.domain_pattern()))
        return sorted(d for d in found if d is not None)

    # -- accounts

    def add_account(self, user: str, domain: str, password: str) -> None:
        user, domain = account_name(user), domain_name(domain)
        self._domain_dir(domain)
        settings_path = self.layout.settings_path(user, domain)
        if settings_path.exists():
            raise AccountExists(f"{user}@{domain}")
        account_dir = self.layout.account_dir(user, domain)
        account_dir.mkdir(parents=True, exist_ok=True)
        fsync_dir(account_dir.parent)
        settings_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(settings_path, bytes(AccountSettings.new(user, domain, password)))
        logger.info("account %s@%s added", user, domain)

    def remove_account(self, user: str, domain: str) -> None:
        user, domain = account_name(user), domain_name(domain)
        self._domain_dir(domain)
        settings_path = self.layout.settings_path(user, domain)
        if not settings_path.exists():
            raise NoSuchAccount(f"{user}@{domain}")
        remove_tree(self.layout.account_dir(user, domain))
        # With fast storage the settings live outside the account directory.
        settings_path.unlink(missing_ok=True)
        logger.info("account %s@%s removed", user, domain)

    def accounts(self, domain: str) -> list[str]:
        domain = domain_name(domain)
        path = self._domain_dir(domain)
        found = (self.layout.account_of(p) for p in path.glob(self.layout.account_pattern()))
        return sorted(
            user
            for user in found
            if user is not None and self.layout.settings_path(user, domain).exists()
        )

    def set_password(self, user: str, domain: str, password: str) -> None:
        user, domain = account_name(user), domain_name(domain)
        settings = self._settings(user, domain)
        if settings is None:
            self._domain_dir(domain)
            raise NoSuchAccount(f"{user}@{domain}")
        path = self.layout.settings_path(user, domain)
        write_atomic(path, bytes(settings.with_password(user, password)))
        logger.info("account %s@%s password set", user, domain)

    def get(self, user: str, domain: str) -> AccountRecord | None:
        user, domain = account_name(user), domain_name(domain)
        settings = self._settings(user, domain)
        if settings is None:
            return None
        return AccountRecord(user=user, domain=domain, realm=settings.realm, ha1=settings.digest)

    # -- the account's info: state that changes while it is served (its bindings)

    def read_info(self, user: str, domain: str) -> bytes | None:
        """The account's ``account.info``, or None when it has none (or no such account)."""
        try:
            return self.layout.info_path(account_name(user), domain_name(domain)).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def write_info(self, user: str, domain: str, data: bytes, *, writer: str) -> None:
        """Replace the account's ``account.info`` atomically (NoSuchAccount without one).

        Written on the request path (a binding before its 200 OK), so it is the
        cheapest atomic replace: a temporary file named after ``writer`` (the one
        member that writes this account: its owner; no two writers share a name, so
        no random name and no O_EXCL retry), then a rename.  No fsync: the file
        survives the death of the member (the page cache has it), not a crash of the
        host; group commit with fsync is the account store issue's.
        """
        user, domain = account_name(user), domain_name(domain)
        path = self.layout.info_path(user, domain)
        temp = path.with_name(f".{INFO_FILE}.{writer}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except (FileNotFoundError, NotADirectoryError):
            raise NoSuchAccount(f"{user}@{domain}") from None
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(temp, path)

    # -- helpers

    def _domain_dir(self, domain: str) -> Path:
        path = self.layout.domain_dir(domain)
        if not path.is_dir():
            raise NoSuchDomain(domain_name(domain))
        return path

    def _settings(self, user: str, domain: str) -> AccountSettings | None:
        try:
            data = self.layout.settings_path(user, domain).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return AccountSettings.parse(data)
