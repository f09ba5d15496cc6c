"""Typed errors of the account store (STYLE.md §4: the caller can tell them apart)."""

from __future__ import annotations


class AccountStoreError(Exception):
    """Base class of every account store error."""


class BadName(AccountStoreError, ValueError):
    """A domain or account name that may not name a directory on the shared storage."""


class DomainExists(AccountStoreError):
    """``add_domain`` of a domain that is already there."""


class NoSuchDomain(AccountStoreError):
    """The domain is not on the storage."""


class AccountExists(AccountStoreError):
    """``add_account`` of an account that is already there."""


class NoSuchAccount(AccountStoreError):
    """The account is not on the storage."""


class AccountUnreadable(AccountStoreError):
    """The account's settings could not be read (the storage failed, or the file is
    damaged): the account is neither known nor known to be absent.  A SIP answer for
    it is a server error (500), never a 404 that tells a phone it does not exist."""
