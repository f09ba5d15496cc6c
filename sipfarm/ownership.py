"""The member token written into messages, and read back (DESIGN.md "Ownership").

A member marks what it owns in what it sends, so that any member can route a
later packet without shared state:

- the **Via branch** of every request it sends: ``z9hG4bK.<token>.<rest>``;
- the **To-tag** of responses it makes itself: ``<token>-<rest>``; a stateless
  answer's (a challenge, a 404 …) is ``<token>-s<8 hex>`` (:func:`stateless_tag`),
  so that any member knows its ACK for one that needs no transaction;
- its **Record-Route** URI: the ``member=<token>`` parameter.

Tokens are 1 to 16 lower-case letters and digits, so ``.`` and ``-`` end them.
Readers take the bytes of :func:`sipfarm.sip.peek` (or text) and return the
token, or None when the value is not one of ours.  A branch of another UA that
happens to look like ours (Linphone writes ``z9hG4bK.<random>``) is told apart
by the caller: a response's top Via must also carry the farm's address.
"""

from __future__ import annotations

import re

from .sip.via import MAGIC_COOKIE

__all__ = [
    "TOKEN_MAX",
    "branch_prefix",
    "is_stateless_tag",
    "is_token",
    "stateless_tag",
    "tag_prefix",
    "token_of_branch",
    "token_of_tag",
    "token_of_uri",
]

TOKEN_MAX = 16
_TOKEN = re.compile(r"[0-9a-z]{1,16}\Z")
_BRANCH = re.compile(rb"z9hG4bK\.([0-9a-z]{1,16})\.")
_TAG = re.compile(rb"([0-9a-z]{1,16})-")
_STATELESS_TAG = re.compile(rb"[0-9a-z]{1,16}-s[0-9a-f]{8}\Z")
_MEMBER = re.compile(rb";[ \t]*member[ \t]*=[ \t]*([0-9a-zA-Z]{1,16})(?=[;>? \t]|\Z)")


def is_token(text: str) -> bool:
    return _TOKEN.match(text) is not None


def branch_prefix(token: str) -> str:
    """What every branch this member writes starts with."""
    return f"{MAGIC_COOKIE}.{token}."


def tag_prefix(token: str) -> str:
    """What every To-tag this member makes starts with."""
    return f"{token}-"


def stateless_tag(token: str, digest: int) -> str:
    """The To-tag of a stateless answer of member ``token``; ``digest`` is 32 bits of the
    request (RFC 3261 §8.2.7: a retransmission gets the same tag).  Stateful tags
    (:mod:`sipfarm.proxy.proxy`) are ``<token>-<hex>``: the ``s`` tells them apart."""
    return f"{token}-s{digest:08x}"


def is_stateless_tag(tag: bytes | str | None) -> bool:
    """Whether ``tag`` is a stateless answer's (:func:`stateless_tag`), of any member."""
    if not tag:
        return False
    return _STATELESS_TAG.match(_bytes(tag)) is not None


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


def token_of_branch(branch: bytes | str | None) -> str | None:
    if not branch:
        return None
    m = _BRANCH.match(_bytes(branch))
    return m.group(1).decode() if m else None


def token_of_tag(tag: bytes | str | None) -> str | None:
    if not tag:
        return None
    m = _TAG.match(_bytes(tag))
    return m.group(1).decode() if m else None


def token_of_uri(uri: bytes | str | None) -> str | None:
    """The ``member`` parameter of a URI (a Route, a Request-URI), lower-cased."""
    if not uri:
        return None
    m = _MEMBER.search(_bytes(uri))
    return m.group(1).decode().lower() if m else None
