"""REGISTER requests of RFC 3665 §2 (Bob at biloxi), written out byte for byte, and a builder.

RFC 3665 reuses Call-ID 1j9FpLxk3uxtm8tn with CSeq 1 across its separate flows; here
they are one story, so the CSeq numbers climb (2, 3, 4, 5) where the RFC restarts at 1,
and the Authorization lines (steps 1 to 5 belong to the caller) are left out.
"""

from __future__ import annotations

import zlib

from sipfarm.actions import Source
from sipfarm.registrar import MemoryLocation, Registrar, RegistrarConfig
from sipfarm.sip import Request, Response, parse

#: client.biloxi.example.com as the registrar sees it (RFC 3665 §2.1 F4: received=192.0.2.201).
BOB = Source("TLS", "192.0.2.201", 5061)
BOB_AOR = "sip:bob@biloxi.example.com"
NOW = 1_000_000_000.0  # Sun, 09 Sep 2001 01:46:40 GMT

# RFC 3665 §2.1 F3 (Successful New Registration), without Authorization.
NEW_REGISTRATION = (
    b"REGISTER sips:ss2.biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TLS client.biloxi.example.com:5061;branch=z9hG4bKnashd92\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: Bob <sips:bob@biloxi.example.com>;tag=ja743ks76zlflH\r\n"
    b"To: Bob <sips:bob@biloxi.example.com>\r\n"
    b"Call-ID: 1j9FpLxk3uxtm8tn@biloxi.example.com\r\n"
    b"CSeq: 2 REGISTER\r\n"
    b"Contact: <sips:bob@client.biloxi.example.com>\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

# RFC 3665 §2.2 F1 (Update of Contact List), CSeq 1 -> 3.
UPDATE_CONTACT_LIST = (
    b"REGISTER sips:ss2.biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TLS client.biloxi.example.com:5061;branch=z9hG4bKnashds7\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: Bob <sips:bob@biloxi.example.com>;tag=a73kszlfl\r\n"
    b"To: Bob <sips:bob@biloxi.example.com>\r\n"
    b"Call-ID: 1j9FpLxk3uxtm8tn@biloxi.example.com\r\n"
    b"CSeq: 3 REGISTER\r\n"
    b"Contact: mailto:bob@biloxi.example.com\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

# RFC 3665 §2.3 F1 (Request for Current Contact List), CSeq 1 -> 4.
QUERY = (
    b"REGISTER sips:ss2.biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TLS client.biloxi.example.com:5061;branch=z9hG4bKnashds7\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: Bob <sips:bob@biloxi.example.com>;tag=a73kszlfl\r\n"
    b"To: Bob <sips:bob@biloxi.example.com>\r\n"
    b"Call-ID: 1j9FpLxk3uxtm8tn@biloxi.example.com\r\n"
    b"CSeq: 4 REGISTER\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

# RFC 3665 §2.4 F1 (Cancellation of Registration), CSeq 1 -> 5.
CANCELLATION = (
    b"REGISTER sips:ss2.biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TLS client.biloxi.example.com:5061;branch=z9hG4bKnashds7\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: Bob <sips:bob@biloxi.example.com>;tag=a73kszlfl\r\n"
    b"To: Bob <sips:bob@biloxi.example.com>\r\n"
    b"Call-ID: 1j9FpLxk3uxtm8tn@biloxi.example.com\r\n"
    b"CSeq: 5 REGISTER\r\n"
    b"Expires: 0\r\n"
    b"Contact: *\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def register(
    *lines: str,
    call_id: str = "reg-1@biloxi.example.com",
    cseq: int = 1,
    to: str = "Bob <sip:bob@biloxi.example.com>",
) -> bytes:
    """A REGISTER for Bob with ``lines`` (Contact, Expires, Path, Supported …) added."""
    head = [
        "REGISTER sip:biloxi.example.com SIP/2.0",
        "Via: SIP/2.0/UDP client.biloxi.example.com:5060;branch=z9hG4bK"
        + f"{cseq}x{zlib.crc32(call_id.encode()):08x}",
        "Max-Forwards: 70",
        "From: Bob <sip:bob@biloxi.example.com>;tag=a73kszlfl",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        *lines,
        "Content-Length: 0",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


def request(data: bytes) -> Request:
    msg = parse(data)
    assert isinstance(msg, Request)
    return msg


def registrar(**config: int) -> tuple[Registrar, MemoryLocation]:
    location = MemoryLocation()
    return Registrar(location, RegistrarConfig(**config)), location


def send(
    reg: Registrar,
    data: bytes,
    now: float = NOW,
    source: Source = BOB,
    aor: str = BOB_AOR,
) -> Response:
    return reg.register(request(data), aor, source, now, to_tag="37GkEhwl6")


def contacts(response: Response) -> list[str]:
    return response.headers.get_all("contact")
