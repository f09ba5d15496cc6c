"""Where domains and accounts live on the shared storage (pure path computation).

The seed's simplest layout (no foldering, no fast storage)::

    <root>/SharedDomains/<domain>/<account>.macnt/account.settings

This module is the only place that knows it: account-level and domain-level
foldering (``j.sub/s.sub/…``) and the fast storage ``fast/`` element are to be
added here, as fields of `Layout`, without touching its callers.  Names are
validated (`mail.names`) before they become path elements.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .names import account_name, domain_name

SHARED_DOMAINS = "SharedDomains"
ACCOUNT_SUFFIX = ".macnt"
SETTINGS_FILE = "account.settings"
INFO_FILE = "account.info"


@dataclass(frozen=True, slots=True)
class Layout:
    """The storage layout under ``root`` (the server's base/data directory)."""

    root: Path

    @property
    def shared_domains(self) -> Path:
        return self.root / SHARED_DOMAINS

    def domain_dir(self, domain: str) -> Path:
        return self.shared_domains / domain_name(domain)

    def account_dir(self, user: str, domain: str) -> Path:
        return self.domain_dir(domain) / (account_name(user) + ACCOUNT_SUFFIX)

    def settings_path(self, user: str, domain: str) -> Path:
        return self.account_dir(user, domain) / SETTINGS_FILE

    def info_path(self, user: str, domain: str) -> Path:
        """The account's changing state (its registered bindings …), beside its settings."""
        return self.account_dir(user, domain) / INFO_FILE

    def domain_pattern(self) -> str:
        """The glob, relative to `shared_domains`, that matches every domain directory."""
        return "*"

    def account_pattern(self) -> str:
        """The glob, relative to a domain directory, that matches every account directory."""
        return "*" + ACCOUNT_SUFFIX

    def domain_of(self, path: Path) -> str | None:
        """The domain whose directory is ``path`` (a `domain_pattern` match), else None."""
        try:
            name = domain_name(path.name)
        except ValueError:
            return None
        return name if name == path.name else None

    def account_of(self, path: Path) -> str | None:
        """The account whose directory is ``path`` (an `account_pattern` match), else None."""
        if not path.name.endswith(ACCOUNT_SUFFIX):
            return None
        stem = path.name[: -len(ACCOUNT_SUFFIX)]
        try:
            name = account_name(stem)
        except ValueError:
            return None
        return name if name == stem else None
