"""Matching messages to transactions (RFC 3261 §17.1.3, §17.2.3, §9.2) and branches (§8.1.1.7).

The keys are values to index a dict of transactions by: the edge computes the
key of what arrived and looks it up.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import NamedTuple

from ..sip.message import Request, Response
from ..sip.via import MAGIC_COOKIE

__all__ = [
    "ClientKey",
    "LegacyServerKey",
    "ServerKey",
    "branch",
    "cancel_target_key",
    "client_key",
    "server_key",
]

#: Bytes of randomness in a branch: 64 bits, unique in space and time (§8.1.1.7).
BRANCH_RANDOM_BYTES = 8


def branch(token: str = "", rand: Callable[[int], str] = secrets.token_hex) -> str:
    """A new branch: the magic cookie, this member's ``token``, then ``rand(8)`` (§8.1.1.7)."""
    return f"{MAGIC_COOKIE}{token}{rand(BRANCH_RANDOM_BYTES)}"


class ClientKey(NamedTuple):
    """§17.1.3: the top Via branch and the CSeq method."""

    branch: str
    method: str


class ServerKey(NamedTuple):
    """§17.2.3 for RFC 3261 clients: branch, sent-by and method (ACK counts as INVITE)."""

    branch: str
    sent_by: str
    method: str


class LegacyServerKey(NamedTuple):
    """§17.2.3 for RFC 2543 clients (no magic cookie in the branch).

    Request-URI, To tag, From tag, Call-ID, CSeq and the top Via.  The To tag
    is left out for INVITE and ACK: an ACK carries the tag of our response,
    which the INVITE did not (the TU compares it against the response it sent).
    """

    uri: str
    to_tag: str | None
    from_tag: str | None
    call_id: str
    cseq: int
    method: str
    via: str


def client_key(message: Request | Response) -> ClientKey | None:
    """The client transaction a request creates or a response belongs to (§17.1.3).

    None when the top Via has no branch (such a response matches nothing of ours).
    """
    b = message.via[0].branch
    if not b:
        return None
    method = message.method if isinstance(message, Request) else message.cseq.method
    return ClientKey(b, method)


def _server_method(method: str) -> str:
    return "INVITE" if method == "ACK" else method


def server_key(request: Request, *, method: str | None = None) -> ServerKey | LegacyServerKey:
    """The server transaction ``request`` belongs to (§17.2.3).

    ``method`` overrides the request's own (see :func:`cancel_target_key`).
    """
    top = request.via[0]
    m = _server_method(method or request.method)
    b = top.branch
    if b and b.startswith(MAGIC_COOKIE):
        return ServerKey(b, top.sent_by.lower(), m)
    return LegacyServerKey(
        uri=str(request.uri),
        to_tag=None if m == "INVITE" else request.to.tag,
        from_tag=request.from_.tag,
        call_id=request.call_id,
        cseq=request.cseq.seq,
        method=m,
        via=str(top),
    )


def cancel_target_key(cancel: Request) -> ServerKey | LegacyServerKey:
    """The key of the INVITE server transaction a CANCEL cancels (§9.2).

    The CANCEL matches the transaction it cancels by the same rules as
    §17.2.3, the method aside: the same branch and sent-by, or for RFC 2543
    clients the same Request-URI, Call-ID, From tag, CSeq number and top Via.
    """
    if cancel.method != "CANCEL":
        raise ValueError(f"not a CANCEL: {cancel.method}")
    return server_key(cancel, method="INVITE")
