"""Account aliases: other names of an account in its domain.

``sip:al@company.com`` reaches the account ``alice`` when ``al`` is one of her
aliases: the proxy looks up her bindings (as Kamailio's ``alias_db`` rewrites the
Request-URI to the canonical one).  An alias is a name, not an account: it does
not register and has no password; it may not be an account's name, nor another
account's alias.

A domain's aliases are one file, ``domain.aliases`` in the domain's directory (so
it moves with the domain in a domain-foldering switch): a JSON object, alias →
account, UTF-8, keys sorted.  Aliases are few beside accounts (a file of a million
would be read at each change); one file per domain keeps a lookup to one cached
read.  In a farm the domain's writer (the controller) writes it, so two writers
never race on it; removing an account drops its aliases.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping

from .errors import AccountExists, AccountStoreError, BadName, NoSuchAccount
from .names import account_name, domain_name
from .store import AccountStore, read_where, write_atomic

logger = logging.getLogger(__name__)

__all__ = ["ALIASES_FILE", "AliasExists", "BadAliases", "aliases", "set_aliases"]

ALIASES_FILE = "domain.aliases"


class AliasExists(AccountStoreError):
    """The name is another account's alias already."""


class BadAliases(AccountStoreError):
    """A ``domain.aliases`` that is not what this module writes."""


def aliases(store: AccountStore, domain: str) -> dict[str, str]:
    """The domain's aliases, alias → account ({} without any; NoSuchDomain, BadAliases)."""
    domain = domain_name(domain)
    store.domain_path(domain)
    found = read_where([d / ALIASES_FILE for d in store.layout.domain_dirs(domain)])
    if found is None:
        return {}
    path, data = found
    try:
        table = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BadAliases(f"{path}: not UTF-8 JSON: {exc}") from None
    if not isinstance(table, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in table.items()
    ):
        raise BadAliases(f"{path}: not an object of names")
    return table


def account_aliases(store: AccountStore, user: str, domain: str) -> list[str]:
    """The aliases of ``user@domain`` (NoSuchAccount when there is no such account)."""
    user, domain = account_name(user), domain_name(domain)
    _account(store, user, domain)
    return sorted(a for a, target in aliases(store, domain).items() if target == user)


def set_aliases(store: AccountStore, user: str, domain: str, names: Iterable[str]) -> list[str]:
    """Make ``names`` the aliases of ``user@domain`` (replacing those it had).

    BadName for a name that may not be one (or is the account's own), AccountExists
    when an account has that name, AliasExists when another account has that alias.
    """
    user, domain = account_name(user), domain_name(domain)
    _account(store, user, domain)
    wanted = sorted({account_name(n) for n in names})
    table = _readable(store, domain)
    for name in wanted:
        if name == user:
            raise BadName(f"{name} is the account's own name, not an alias")
        if table.get(name, user) != user:
            raise AliasExists(f"{name}@{domain} is an alias of {table[name]}")
        if store.get(name, domain) is not None:
            raise AccountExists(f"{name}@{domain}")
    table = {a: t for a, t in table.items() if t != user} | dict.fromkeys(wanted, user)
    _write(store, domain, table)
    logger.info("account %s@%s: aliases %s", user, domain, ", ".join(wanted) or "none")
    return wanted


def drop_aliases(store: AccountStore, user: str, domain: str) -> None:
    """Forget the aliases of ``user@domain`` (it was removed)."""
    user, domain = account_name(user), domain_name(domain)
    table = _readable(store, domain)
    if user in table.values():
        _write(store, domain, {a: t for a, t in table.items() if t != user})


def _account(store: AccountStore, user: str, domain: str) -> None:
    if store.get(user, domain) is None:
        store.domain_path(domain)  # NoSuchDomain before NoSuchAccount
        raise NoSuchAccount(f"{user}@{domain}")


def _readable(store: AccountStore, domain: str) -> dict[str, str]:
    """The aliases to change; a damaged file is replaced (logged: what it held is lost)."""
    try:
        return aliases(store, domain)
    except BadAliases as exc:
        logger.error("aliases of %s unreadable, written afresh: %s", domain, exc)
        return {}


def _write(store: AccountStore, domain: str, table: Mapping[str, str]) -> None:
    data = json.dumps(dict(sorted(table.items())), ensure_ascii=False, indent=1) + "\n"
    write_atomic(store.domain_path(domain) / ALIASES_FILE, data.encode())
