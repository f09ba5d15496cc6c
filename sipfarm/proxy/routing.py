"""Route sets, next hops and the requests a proxy sends (RFC 3261 §16.4, §16.6, §16.12, §9.1).

Pure helpers over parsed messages.  A forwarded request is built as a header
list whose untouched lines are written back as received, with the typed
views it shares with the original carried over, so that the client
transaction and ``bytes()`` need no second parse.
"""

from __future__ import annotations

import zlib
from typing import NamedTuple

from ..actions import Source
from ..ownership import token_of_branch
from ..sip.cseq import CSeq
from ..sip.grammar import split_comma
from ..sip.headers import HeaderField, Headers
from ..sip.message import Request, Response
from ..sip.uri import SipUri, Uri
from ..sip.via import Via, parse_via, response_address

__all__ = [
    "Hop",
    "Self",
    "answer_address",
    "cancel_for",
    "forward",
    "is_farm_branch",
    "loop_hash",
    "next_hop",
    "strip_top_via",
    "transport_of",
]

_HF = HeaderField


class Hop(NamedTuple):
    """Where a request goes next: transport and address (RFC 3263 without DNS: numeric hosts)."""

    transport: str
    host: str
    port: int


def transport_of(uri: SipUri) -> str:
    """The transport a SIP URI asks for (§19.1.1: ``transport=``; sips means TLS)."""
    t = uri.params.get("transport")
    if t:
        return t.upper()
    return "TLS" if uri.scheme == "sips" else "UDP"


def next_hop(uri: Uri) -> Hop | None:
    """The hop for ``uri`` (maddr, host, port, transport), or None when it is not a SIP URI."""
    if not isinstance(uri, SipUri):
        return None
    transport = transport_of(uri)
    host = uri.params.get("maddr") or uri.host
    if host.startswith("["):
        host = host[1:-1]
    port = uri.port or (5061 if transport == "TLS" else 5060)
    return Hop(transport, host, port)


def answer_address(request: Request, source: Source) -> tuple[str, int]:
    """Where the answers to ``request`` go: over UDP the address its top Via says (RFC
    3261 §18.2.2, RFC 3581); over a stream, the connection it came on (its peer)."""
    if source.transport == "UDP":
        return response_address(request.via[0], (source.host, source.port))
    return (source.host, source.port)


class Self:
    """How this proxy recognises itself in a URI: its addresses and its member token.

    ``addresses`` holds ``host:port`` strings (lower case) the member answers
    on; ``token`` is the ``member`` URI parameter of its Record-Route (DESIGN.md
    "Ownership").
    """

    __slots__ = ("addresses", "advertise", "token")

    def __init__(self, token: str, advertise: tuple[str, int], addresses: set[str]):
        self.token = token
        self.advertise = advertise
        self.addresses = {a.lower() for a in addresses}
        host = f"[{advertise[0]}]" if ":" in advertise[0] else advertise[0]
        self.addresses.add(f"{host}:{advertise[1]}".lower())

    def is_me(self, uri: Uri) -> bool:
        if not isinstance(uri, SipUri):
            return False
        if uri.params.get("member") == self.token:
            return True
        port = uri.port or (5061 if uri.scheme == "sips" else 5060)
        return f"{uri.host}:{port}".lower() in self.addresses

    def record_route(self, transport: str, token: str | None = None) -> str:
        """Our Record-Route value (§16.6 step 4): loose routing and the member token
        (``token``: that of the member this one forwards for)."""
        host, port = self.advertise
        if ":" in host:
            host = f"[{host}]"
        t = "" if transport == "UDP" else f";transport={transport.lower()}"
        return f"<sip:{host}:{port}{t};lr;member={token or self.token}>"

    def via(self, transport: str, branch: str) -> str:
        host, port = self.advertise
        if ":" in host:
            host = f"[{host}]"
        return f"SIP/2.0/{transport} {host}:{port};branch={branch}"


def loop_hash(request: Request) -> str:
    """§16.6 step 8: a hash of what identifies a request's route, for loop detection (§16.3).

    Request-URI, From tag, To tag, Call-ID, CSeq number and the Route and
    Proxy-Require lines; eight hex digits.
    """
    h = request.headers
    text = "|".join(
        (
            str(request.uri),
            request.from_.tag or "",
            request.to.tag or "",
            request.call_id,
            str(request.cseq.seq),
            ",".join(h.get_all_key("route")),
            ",".join(h.get_all_key("proxy-require")),
        )
    )
    return f"{zlib.crc32(text.encode('utf-8', 'surrogateescape')):08x}"


def _drop_first_values(fields: list[HeaderField], names: frozenset[str], n: int) -> None:
    """Remove the first ``n`` elements of the comma-list header spelled ``names``."""
    i = 0
    while n and i < len(fields):
        f = fields[i]
        if f[0].lower() not in names:
            i += 1
            continue
        elems = split_comma(f[1]) if "," in f[1] else [f[1]]
        while n and elems:
            elems.pop(0)
            n -= 1
        if elems:
            fields[i] = _HF(f[0], ", ".join(elems))
            i += 1
        else:
            del fields[i]


_ROUTE = frozenset({"route"})
_VIA = frozenset({"via", "v"})


def forward(
    request: Request,
    *,
    uri: Uri,
    via: str,
    pop_routes: int = 0,
    routes: tuple[str, ...] = (),
    record_route: tuple[str, ...] = (),
    strip_last_route: bool = False,
) -> Request:
    """The copy of ``request`` a proxy sends on (§16.6 steps 1-8).

    ``uri`` is the new Request-URI; ``pop_routes`` Route elements that named us
    are removed (§16.4), ``routes`` (a Path, RFC 3327) are pushed on top,
    ``record_route`` values inserted, Max-Forwards decremented (70 when
    absent), and ``via`` goes on top.
    """
    fields = list(request.headers)
    if pop_routes:
        _drop_first_values(fields, _ROUTE, pop_routes)
    if strip_last_route:
        for i in range(len(fields) - 1, -1, -1):
            if fields[i][0].lower() == "route":
                elems = split_comma(fields[i][1])
                if len(elems) > 1:
                    fields[i] = _HF(fields[i][0], ", ".join(elems[:-1]))
                else:
                    del fields[i]
                break
    mf = request.max_forwards
    head: list[HeaderField] = [_HF("Via", via)]
    head += [_HF("Record-Route", rr) for rr in record_route]
    head += [_HF("Route", r) for r in routes]
    if mf is None:
        head.append(_HF("Max-Forwards", "70"))
    else:
        for i, f in enumerate(fields):
            if f[0].lower() == "max-forwards":
                fields[i] = _HF(f[0], str(mf - 1))
                break
    headers = Headers(head + fields)
    out = Request(method=request.method, uri=uri, headers=headers, body=request.body)
    out.raw = _wire(f"{request.method} {uri} {request.version}", headers, request)
    out._call_id = request._call_id
    out._cseq = request._cseq
    out._max_forwards = 70 if mf is None else mf - 1
    out._content_length = request._content_length
    out._via = (parse_via(via), *request.via)
    out._from = request._from
    out._to = request._to
    out._contact = request._contact
    return out


def _wire(start: str, headers: Headers, like: Request | Response) -> bytes:
    """The bytes of a message made from ``like`` with ``headers`` (Content-Length kept or
    added), written once so that ``bytes()`` needs no lookup in the new list."""
    head = bytes(headers)
    if like.content_length is None:  # the original had none (allowed on UDP): add it
        head += b"Content-Length: %d\r\n" % len(like.body)
    return start.encode("utf-8", "surrogateescape") + b"\r\n" + head + b"\r\n" + like.body


def strip_top_via(response: Response) -> Response:
    """The response a proxy passes upstream: without its own top Via (§16.7 step 3)."""
    fields = list(response.headers)
    _drop_first_values(fields, _VIA, 1)
    headers = Headers(fields)
    out = Response(
        status=response.status,
        reason=response.reason,
        headers=headers,
        body=response.body,
        version=response.version,
    )
    out.raw = _wire(f"{response.version} {response.status} {response.reason}", headers, response)
    out._call_id = response._call_id
    out._cseq = response._cseq
    out._content_length = response._content_length
    out._via = response.via[1:]
    out._from = response._from
    out._to = response._to
    return out


def cancel_for(invite: Request) -> Request:
    """The CANCEL of an INVITE this proxy sent (§9.1).

    Request-URI, Call-ID, To, From, the CSeq number and the top Via (so the
    same branch) of the INVITE, its Route lines, and Max-Forwards 70.
    """
    src = invite.headers
    fields = [src.fields_key("via")[0]]
    top = fields[0]
    if "," in top[1]:
        fields[0] = _HF(top[0], split_comma(top[1])[0])
    fields += src.fields_key("route")
    fields.append(_HF("Max-Forwards", "70"))
    fields += src.fields_key("from")
    fields += src.fields_key("to")
    fields += src.fields_key("call-id")
    fields.append(_HF("CSeq", str(CSeq(invite.cseq.seq, "CANCEL"))))
    fields.append(_HF("Content-Length", "0"))
    out = Request(method="CANCEL", uri=invite.uri, headers=Headers(fields))
    out._via = invite.via[:1]
    out._call_id = invite._call_id
    out._cseq = CSeq(invite.cseq.seq, "CANCEL")
    out._from = invite._from
    out._to = invite._to
    return out


def is_farm_branch(via: Via, me: Self) -> bool:
    """Whether ``via`` is one a member of this farm put on a request: a member's branch
    under an address of ours (the address every member advertises, DESIGN.md
    "Ownership"); another proxy's Via may carry a branch of the same shape."""
    return token_of_branch(via.branch) is not None and via.sent_by.lower() in me.addresses
