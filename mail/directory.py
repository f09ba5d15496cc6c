"""What the SIP side asks of the account store, cached: served domains and account records.

`Directory` is the read side the registrar, the authenticator and the proxy use
on every request, so it answers from memory: an account is read from the
store the first time it is asked for and kept for ``ttl`` seconds (a missing
one too, so that a flood of REGISTERs for unknown users does not become a
flood of file reads).  A password changed with ``sipfarm account passwd`` is
therefore seen within ``ttl``.  The next issue (account ownership) replaces
this with the owner's in-memory account.

Reads of the store are file reads on the event loop: one per account per
``ttl``.  The cache is bounded; when full it is emptied (cheap, and the
working set of a member refills it within one registration interval).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from .api import AccountRecord, Accounts
from .errors import AccountStoreError, AccountUnreadable

logger = logging.getLogger(__name__)

__all__ = ["UNREADABLE_RETRY", "Directory"]


#: Seconds an account whose settings could not be read is refused before the next read.
UNREADABLE_RETRY = 1.0


class Directory:
    """Domains and accounts of an `Accounts` store, read through a bounded TTL cache."""

    def __init__(
        self,
        store: Accounts,
        *,
        ttl: float = 30.0,
        max_entries: int = 1_000_000,
        clock: Callable[[], float] = time.monotonic,
        aliases: Callable[[str], Mapping[str, str]] | None = None,
    ) -> None:
        self.store = store
        self._read_aliases = aliases  # a domain's alias → account (mail.aliases)
        self._aliases: dict[str, tuple[Mapping[str, str], float]] = {}
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._domains: frozenset[str] = frozenset()
        self._domains_at = -float("inf")
        self._accounts: dict[tuple[str, str], tuple[AccountRecord | None, float]] = {}
        # Accounts whose settings could not be read: until when, and why (not read again
        # before then: a storage outage costs one read a second per account, not one a
        # request, and one error line each time).
        self._unreadable: dict[tuple[str, str], tuple[float, str]] = {}

    def clear(self) -> None:
        """Forget what is cached (provisioning changed the store: read it afresh)."""
        self._accounts.clear()
        self._unreadable.clear()
        self._aliases.clear()
        self._domains_at = -float("inf")

    def forget(self, user: str, domain: str) -> None:
        """Forget one account (provisioning changed it: read it afresh when next asked)."""
        self._accounts.pop((user.lower(), domain.lower()), None)
        self._unreadable.pop((user.lower(), domain.lower()), None)

    def domains(self) -> frozenset[str]:
        now = self._clock()
        if now - self._domains_at > self.ttl:
            self._domains = frozenset(self.store.domains())
            self._domains_at = now
        return self._domains

    def has_domain(self, domain: str) -> bool:
        return domain.lower() in self.domains()

    def account(self, user: str, domain: str) -> AccountRecord | None:
        """The account ``user@domain``, or None when there is none (or the name is bad).

        Raises AccountUnreadable when its settings cannot be read (a storage error, a
        damaged file: the error names it), for UNREADABLE_RETRY seconds before the
        store is read again.  A damaged file is an operator's matter: a new password
        writes fresh settings.
        """
        k = (user.lower(), domain.lower())  # the store folds names: one account
        hit = self._accounts.get(k)
        now = self._clock()
        if hit is not None and now - hit[1] <= self.ttl:
            return hit[0]
        if self._unreadable:
            failed = self._unreadable.get(k)
            if failed is not None:
                if now < failed[0]:
                    raise AccountUnreadable(failed[1])
                del self._unreadable[k]
        try:
            record = self.store.get(user, domain.lower())
        except AccountStoreError as exc:  # a bad name: no such account
            logger.debug("account %s@%s: %s", user, domain, exc)
            record = None
        except (OSError, ValueError) as exc:
            why = f"account {user}@{domain}: settings unreadable: {exc}"
            logger.error("%s", why)
            if len(self._unreadable) >= self.max_entries:
                self._unreadable.clear()
            self._unreadable[k] = (now + UNREADABLE_RETRY, why)
            raise AccountUnreadable(why) from exc
        if len(self._accounts) >= self.max_entries:
            self._accounts.clear()
        self._accounts[k] = (record, now)
        return record

    def canonical(self, user: str, domain: str) -> str | None:
        """The account ``user@domain`` names: its own, or the one it is an alias of;
        None when it names none."""
        record = self.account(user, domain)
        if record is not None:
            return record.user
        if self._read_aliases is None:
            return None
        target = self.aliases(domain).get(user.lower())
        if target is None or self.account(target, domain) is None:
            return None
        return target

    def aliases(self, domain: str) -> Mapping[str, str]:
        """The domain's aliases (alias → account), read through the cache."""
        domain = domain.lower()
        hit = self._aliases.get(domain)
        now = self._clock()
        if hit is not None and now - hit[1] <= self.ttl:
            return hit[0]
        table: Mapping[str, str] = {}
        if self._read_aliases is not None:
            try:
                table = self._read_aliases(domain)
            except AccountStoreError as exc:  # no such domain, or a damaged file
                logger.warning("aliases of %s: %s", domain, exc)
            except OSError as exc:
                logger.warning("aliases of %s unreadable: %s", domain, exc)
        self._aliases[domain] = (table, now)
        return table
