"""Domain and account names as they may appear in storage paths (pure).

Names are folded to lower case.  A domain is DNS-ish (RFC 1035 §2.3.1 labels of
letters, digits and hyphens, RFC 1123 §2.1 allowing a leading digit; an
internationalized domain is given as its A-labels, ``xn--…``).  Two domain names
are reserved by the seed's layout: ``fast`` (the fast storage element sits where
domains do when the fast index is 1) and any name whose last label is ``sub``
(domain folders are ``<letters>.sub``).

An account name is made of letters, marks and digits of any script (Unicode
categories L, M, N) and ``.``, ``_``, ``-``, and does not start with ``.`` or a
mark; it is folded to lower case and NFC (one spelling, one directory), and is
at most `MAX_ACCOUNT` octets of UTF-8 (RFC 5321 §4.5.3.1.1, kept in octets by
RFC 6531 §3.3), so ``<name>.macnt`` is far under a file name's 255 bytes.

Neither kind of name can contain ``/``, be ``.``/``..`` or start with ``.``, so
neither can leave its directory.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import BadName

#: RFC 1035 §2.3.4: labels of 63 octets or less, names of 255 octets or less.
MAX_LABEL = 63
MAX_DOMAIN = 253
#: RFC 5321 §4.5.3.1.1: a local part of 64 octets.
MAX_ACCOUNT = 64

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\Z")
_ACCOUNT_ASCII = re.compile(r"[a-z0-9_-][a-z0-9._-]*\Z")
_ACCOUNT_PUNCTUATION = frozenset("._-")
_RESERVED_DOMAINS = frozenset({"fast"})


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
    if name in _RESERVED_DOMAINS or name.endswith(".sub") or name == "sub":
        raise BadName(f"domain name reserved by the storage layout: {text!r}")
    return name


def account_name(text: str) -> str:
    """The canonical (lower-case) account name ``text``, or raise `BadName`."""
    if text.isascii():  # the common case, without Unicode tables
        name = text.lower()
        if _ACCOUNT_ASCII.match(name) and len(name) <= MAX_ACCOUNT:
            return name
    name = unicodedata.normalize("NFC", text.lower())
    if not name:
        raise BadName("empty account name")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_ACCOUNT:
        raise BadName(f"account name longer than {MAX_ACCOUNT} octets: {text!r}")
    if (
        not all(_is_account_char(c) for c in name)
        or name[0] == "."
        or unicodedata.category(name[0])[0] == "M"
        or unicodedata.normalize("NFC", name.lower()) != name
    ):
        raise BadName(f"bad account name: {text!r}")
    return name


def _is_account_char(c: str) -> bool:
    return c in _ACCOUNT_PUNCTUATION or unicodedata.category(c)[0] in "LMN"


def address(text: str) -> tuple[str, str]:
    """``user@domain`` split into its canonical account and domain names."""
    user, sep, domain = text.rpartition("@")
    if not sep:
        raise BadName(f"not USER@DOMAIN: {text!r}")
    return account_name(user), domain_name(domain)
