"""Domain and account names as they may appear in storage paths (pure).

Names are folded to lower case.  A domain is DNS-ish (RFC 1035 §2.3.1 labels of
letters, digits and hyphens, RFC 1123 §2.1 allowing a leading digit); an account name
uses ``[a-z0-9._-]`` and does not start with ``.``.  Neither can contain ``/``, be
``.``/``..`` or start with ``.``, so neither can leave its directory.
"""

from __future__ import annotations

import re

from .errors import BadName

#: RFC 1035 §2.3.4: labels of 63 octets or less, names of 255 octets or less.
MAX_LABEL = 63
MAX_DOMAIN = 253
#: RFC 5321 §4.5.3.1.1: a local part of 64 octets.
MAX_ACCOUNT = 64

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\Z")
_ACCOUNT = re.compile(r"[a-z0-9_-][a-z0-9._-]*\Z")


def domain_name(text: str) -> str:
    """The canonical (lower-case) domain name ``text``, or raise `BadName`."""
    name = text.lower()
    if not name:
        raise BadName("empty domain name")
    if len(name) > MAX_DOMAIN:
        raise BadName(f"domain name longer than {MAX_DOMAIN}: {text!r}")
    for label in name.split("."):
        if len(label) > MAX_LABEL or not _LABEL.match(label):
            raise BadName(f"bad domain name: {text!r}")
    return name


def account_name(text: str) -> str:
    """The canonical (lower-case) account name ``text``, or raise `BadName`."""
    name = text.lower()
    if not name:
        raise BadName("empty account name")
    if len(name) > MAX_ACCOUNT:
        raise BadName(f"account name longer than {MAX_ACCOUNT}: {text!r}")
    if not _ACCOUNT.match(name):
        raise BadName(f"bad account name: {text!r}")
    return name


def address(text: str) -> tuple[str, str]:
    """``user@domain`` split into its canonical account and domain names."""
    user, sep, domain = text.rpartition("@")
    if not sep:
        raise BadName(f"not USER@DOMAIN: {text!r}")
    return account_name(user), domain_name(domain)
