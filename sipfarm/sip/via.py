"""Via (RFC 3261 §20.42, §18.2.1) with ``rport`` (RFC 3581)."""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

from .errors import BadRequest
from .grammar import WS, is_token
from .params import EMPTY, Params, parse_header_params
from .uri import HOST_PATTERN, parse_host, parse_port

__all__ = ["MAGIC_COOKIE", "Via", "is_ip", "parse_via", "response_address", "stamp_received"]

#: RFC 3261 §8.1.1.7: branches of RFC 3261 clients start with this.
MAGIC_COOKIE = "z9hG4bK"

_FAST = re.compile(
    r"SIP/2\.0/([A-Za-z]+) (" + HOST_PATTERN + r")(?::([0-9]{1,5}))?(?:[ \t]*;(.*))?\Z", re.S
)
_TRANSPORT = re.compile(r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]+(.*)\Z", re.S)


class Via(NamedTuple):
    """One via-parm: ``SIP/2.0/UDP host:port;branch=…``."""

    transport: str
    host: str
    port: int | None = None
    params: Params = EMPTY
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> str | None:
        """'' when the client asks for rport (RFC 3581 §3), the port once filled in, else None."""
        return self.params.get("rport")

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{self.params}"


try:  # the C read of the _FAST shape (sipfarm.sip._speedups); None for anything else
    from ._speedups import configure as _configure_c  # type: ignore[import-not-found]
    from ._speedups import parse_via as _parse_via_c
except ImportError:  # built without a C compiler: the Python read alone
    _parse_via_c = None
else:
    _configure_c(via=Via)


def parse_via(text: str) -> Via:
    """Parse one via-parm (the header value already comma-split)."""
    if _parse_via_c is not None:
        via: Via | None = _parse_via_c(text)
        if via is not None:
            return via
    m = _FAST.match(text)
    if m is not None:
        transport, host, port, ptext = m.groups()
        return Via(
            transport.upper(),
            host,
            parse_port(port) if port is not None else None,
            parse_header_params(ptext) if ptext is not None else EMPTY,
        )
    parts = text.split("/", 2)
    if len(parts) != 3:
        raise BadRequest("Bad Via: sent-protocol")
    name = parts[0].strip(WS)
    version = parts[1].strip(WS)
    if name.upper() != "SIP" or not is_token(version):
        raise BadRequest("Bad Via: sent-protocol")
    t = _TRANSPORT.match(parts[2].lstrip(WS))
    if t is None:
        raise BadRequest("Bad Via: transport or sent-by")
    transport, rest = t.groups()
    sent_by, semi, ptext = rest.partition(";")
    sent_by = sent_by.strip(WS)
    if sent_by.startswith("["):
        end = sent_by.find("]")
        host = sent_by[: end + 1] if end > 0 else sent_by
        tail = sent_by[len(host) :].strip(WS)
    else:
        host, colon, port_text = sent_by.partition(":")
        host = host.rstrip(WS)
        tail = ":" + port_text if colon else ""
    port = None
    if tail:
        if tail[0] != ":":
            raise BadRequest("Bad Via: sent-by")
        port = parse_port(tail[1:].strip(WS))
    return Via(
        transport.upper(),
        parse_host(host),
        port,
        parse_header_params(ptext) if semi else EMPTY,
        f"{name}/{version}",
    )


def stamp_received(via: Via, host: str, port: int) -> Via:
    """Add ``received`` (RFC 3261 §18.2.1) and fill ``rport`` (RFC 3581 §4) from the source.

    Returns ``via`` itself when nothing needs to change.
    """
    params = via.params
    rport = params.get("rport")
    if rport == "":
        params = params.set("rport", str(port)).set("received", host)
    elif via.host != host:
        params = params.set("received", host)
    else:
        return via
    return via._replace(params=params)


#: RFC 3261 §18.1.1 / §19.1.2: default ports.
DEFAULT_PORT = {"UDP": 5060, "TCP": 5060, "SCTP": 5060, "TLS": 5061, "WS": 80, "WSS": 443}


def response_address(via: Via, source: tuple[str, int]) -> tuple[str, int]:
    """Where an unreliable transport sends a response (RFC 3261 §18.2.2, RFC 3581 §4).

    ``via`` is the top Via of the request as received; ``source`` its source address.
    """
    port = via.port or DEFAULT_PORT.get(via.transport, 5060)
    maddr = via.params.get("maddr")
    if maddr and is_ip(maddr):  # a name would need a DNS lookup (§18.2.2): not here
        return maddr, port
    host = via.received or source[0]
    rport = via.rport
    if rport is not None:
        return host, int(rport) if rport else source[1]
    return host, port


def is_ip(text: str) -> bool:
    """Whether ``text`` is an IPv4 or IPv6 address (brackets allowed), not a name."""
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True
