"""The member's stateless core: what it answers without a transaction (sans-IO).

Bytes and their source in, one action out (STYLE.md §1).  This is the whole
of a member's SIP behaviour until transactions, the registrar and the proxy
arrive (the next issue); they will take over the methods they serve, and this
core keeps the rules every request meets first:

- a request that does not parse gets its error answered when Via/From/To/
  Call-ID/CSeq survive (RFC 3261 §8.2.6.2), else it is dropped and counted;
- Require with an unknown option tag: 420 + Unsupported (§8.2.2.3);
- unknown Request-URI scheme: 416 (§8.2.2.1); Max-Forwards 0: 483 (§16.3),
  except OPTIONS, which the member answers itself (§11);
- OPTIONS: 200 with Allow, Accept and Supported (§11.2);
- a method the member knows but does not serve: 405 + Allow (§8.2.1); a
  method it does not know: 501 + Allow (§21.5.2);
- ACK is never answered (§17.2.1: no transaction matches it statelessly); a
  CANCEL matches no transaction here: 481 (§9.2);
- responses match no client transaction: dropped and counted (§18.1.2).

To-tags of the answers are a function of the request (RFC 3261 §8.2.7: a
stateless UAS answers a retransmission with the same tag) and start with the
member token (DESIGN.md "Ownership").
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass

from .actions import Action, Drop, SendResponse, Source
from .ownership import stateless_tag
from .sip import Request, SipError, make_response, parse, salvage_response, validate_request
from .sip.errors import MethodNotAllowed, NotImplemented_
from .sip.headers import HeaderField, Headers
from .sip.via import parse_via, response_address

try:  # the C answer of the common OPTIONS (sipfarm.sip._speedups); None for anything else
    from .sip._speedups import answer_options as _answer_options  # type: ignore[import-not-found]
except ImportError:  # built without a C compiler: receive() alone
    _answer_options = None

__all__ = ["KNOWN_METHODS", "StatelessConfig", "StatelessCore"]

#: Methods of RFC 3261 and the extensions in common use (RFC 3262, 3265/6665, 3311,
#: 3428, 3515, 3903, 2976).  A method outside this list is unknown: 501.
KNOWN_METHODS = frozenset(
    {
        "INVITE",
        "ACK",
        "CANCEL",
        "BYE",
        "REGISTER",
        "OPTIONS",
        "PRACK",
        "SUBSCRIBE",
        "NOTIFY",
        "UPDATE",
        "MESSAGE",
        "REFER",
        "PUBLISH",
        "INFO",
    }
)


@dataclass(frozen=True, slots=True)
class StatelessConfig:
    """What the stateless core needs: the member token and what it advertises."""

    token: str
    allow: tuple[str, ...] = ("OPTIONS",)
    accept: tuple[str, ...] = ("application/sdp",)
    supported: tuple[str, ...] = ()
    server: str = ""  # a Server header value, or none


class StatelessCore:
    """Answers requests statelessly; counts what it drops in :attr:`counters`."""

    def __init__(self, config: StatelessConfig):
        self.config = config
        self.counters: Counter[str] = Counter()
        allow = ", ".join(config.allow)
        self._allow = (("Allow", allow),)
        self.options_headers = (
            ("Allow", allow),
            ("Accept", ", ".join(config.accept)),
            ("Supported", ", ".join(config.supported)),
            *((("Server", config.server),) if config.server else ()),
        )
        # the OPTIONS lines as make_response writes them, for the C answer
        self.options_extra = bytes(Headers(HeaderField(n, v) for n, v in self.options_headers))

    def to_tag(self, request: Request) -> str:
        """The same tag for the same request (RFC 3261 §8.2.7), prefixed by the member token.

        A function of Call-ID, From (as written, so its tag), the top Via branch and CSeq.
        """
        key = "|".join(
            (
                request.call_id,
                request.headers.get_key("from") or "",
                request.via[0].branch or "",
                str(request.cseq.seq),
            )
        ).encode("utf-8", "surrogateescape")
        return stateless_tag(self.config.token, zlib.crc32(key))

    def receive(self, data: bytes, source: Source) -> Action:
        """One message, whole (a datagram, or what the stream framer cut out)."""
        if _answer_options is not None:  # the common OPTIONS, answered in C as below
            answer = _answer_options(
                data, source.host, source.port, self.config.token, self.options_extra
            )
            if answer is not None:
                self.counters["options"] += 1
                return SendResponse(answer[0], (answer[1], answer[2]))
        try:
            msg = parse(data)
        except SipError as exc:
            return self.refuse(data, exc, source)
        if not isinstance(msg, Request):
            self.counters["stray_response"] += 1
            return Drop("stray_response", f"{msg.status} matches no transaction")
        request = msg.with_received(source.host, source.port)
        if request.method == "ACK":
            self.counters["ack_absorbed"] += 1
            return Drop("ack_absorbed", "ACK matches no transaction")
        try:
            validate_request(request, self.config.supported)
            return self._answer(request, source)
        except SipError as exc:
            self.counters[f"answered_{exc.status}"] += 1
            return self._respond(request, source, exc.status, exc.reason, exc.headers)

    def _answer(self, request: Request, source: Source) -> Action:
        method = request.method
        if method == "OPTIONS":
            self.counters["options"] += 1
            return self._respond(request, source, 200, "OK", self.options_headers)
        if method == "CANCEL":
            self.counters["answered_481"] += 1
            return self._respond(request, source, 481, None, ())
        if method in KNOWN_METHODS:
            raise MethodNotAllowed(headers=self._allow)
        raise NotImplemented_(headers=self._allow)

    def _respond(
        self,
        request: Request,
        source: Source,
        status: int,
        reason: str | None,
        headers: tuple[tuple[str, str], ...],
    ) -> SendResponse:
        address = response_address(request.via[0], (source.host, source.port))
        return SendResponse(self.answer(request, status, reason, headers), address)

    def answer(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> bytes:
        """The bytes of a stateless answer (§8.2.6), with :meth:`to_tag` unless To has one."""
        tag = None if request.to.tag is not None else self.to_tag(request)
        return bytes(make_response(request, status, reason, headers=headers, to_tag=tag))

    def refuse(self, data: bytes, exc: SipError, source: Source) -> Action:
        """Answer ``exc`` to a request that is broken, if enough of it survives; else drop."""
        tag = stateless_tag(self.config.token, zlib.crc32(data))
        answer = salvage_response(data, exc, tag, (source.host, source.port))
        if answer is None:
            self.counters["garbage"] += 1
            return Drop("garbage", f"{exc.status} {exc.reason}")
        self.counters[f"answered_{exc.status}"] += 1
        address = (source.host, source.port)
        top = answer.split(b"\r\n", 2)[1]  # salvage writes the Via lines right after the status
        try:
            via = parse_via(top[5:].split(b",", 1)[0].decode("utf-8", "surrogateescape"))
            address = response_address(via, address)
        except SipError:
            pass  # the Via is what broke: answer where the request came from
        return SendResponse(answer, address)
