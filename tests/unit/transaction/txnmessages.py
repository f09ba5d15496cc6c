"""Literal requests for the transaction tests (RFC 3665 §2.1 F1 and §3.1 F1, CRLF-expanded).

The transports in the Via lines are switched per test (``over``); everything else is
as the RFC prints it, bodies left out.
"""

from __future__ import annotations

from sipfarm.sip import Request, Response, make_response, parse

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n"
    b"Max-Forwards: 70\r\n"
    b"Route: <sip:ss1.atlanta.example.com;lr>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:alice@client.atlanta.example.com>\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

REGISTER = (
    b"REGISTER sip:ss2.biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP client.biloxi.example.com:5060;branch=z9hG4bKnashds7\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: Bob <sip:bob@biloxi.example.com>;tag=a73kszlfl\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"Call-ID: 1j9FpLxk3uxtm8tn@biloxi.example.com\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Contact: <sip:bob@client.biloxi.example.com>\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

#: RFC 3665 §3.8: the CANCEL of the INVITE above (same branch, CSeq 1 CANCEL).
CANCEL = (
    b"CANCEL sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n"
    b"Max-Forwards: 70\r\n"
    b"Route: <sip:ss1.atlanta.example.com;lr>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 1 CANCEL\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def request(data: bytes, *, over: str = "UDP", branch: str | None = None) -> Request:
    """``data`` parsed, its top Via sent over ``over``, its branch replaced when given."""
    if over != "UDP":
        data = data.replace(b"SIP/2.0/UDP", b"SIP/2.0/" + over.encode(), 1)
    if branch is not None:
        start = data.index(b"branch=") + len(b"branch=")
        end = data.index(b"\r\n", start)
        data = data[:start] + branch.encode() + data[end:]
    msg = parse(data)
    assert isinstance(msg, Request)
    return msg


def response(req: Request, status: int) -> Response:
    """The UAS's answer to ``req``, tagged as RFC 3665 §3.1 F2 tags it, read back from bytes."""
    msg = parse(bytes(make_response(req, status, to_tag="8321234356")))
    assert isinstance(msg, Response)
    return msg
