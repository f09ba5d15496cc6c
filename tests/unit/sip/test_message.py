"""The message core with literal messages (RFC 3261 §7, §20, §25; RFC 3665 examples)."""

from __future__ import annotations

import pytest

from sipfarm.sip import (
    AbsoluteUri,
    Headers,
    Request,
    Response,
    SipError,
    SipUri,
    TelUri,
    make_response,
    parse,
    parse_auth,
    parse_nameaddr,
    parse_uri,
    parse_via,
    salvage_response,
)
from sipfarm.sip.errors import BadExtension, BadRequest, VersionNotSupported

# RFC 3665 §2.1, message F1 (Bob registers).
REGISTER = (
    b"REGISTER sips:ss2.biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TLS client.biloxi.example.com:5061;branch=z9hG4bKnashds7\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: Bob <sips:bob@biloxi.example.com>;tag=a73kszlfl\r\n"
    b"To: Bob <sips:bob@biloxi.example.com>\r\n"
    b"Call-ID: 1j9FpLxk3uxtm8tn@biloxi.example.com\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Contact: <sips:bob@client.biloxi.example.com>\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

# RFC 3665 §3.1, message F1 (Alice calls Bob), with its SDP.
SDP = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 client.atlanta.example.com\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.101\r\n"
    b"t=0 0\r\n"
    b"m=audio 49172 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)
INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: %d\r\n"
    b"\r\n" % len(SDP)
) + SDP


def test_register_fields() -> None:
    msg = parse(REGISTER)
    assert isinstance(msg, Request)
    assert msg.method == "REGISTER"
    assert str(msg.uri) == "sips:ss2.biloxi.example.com"
    assert msg.uri.scheme == "sips"
    (via,) = msg.via
    assert (via.transport, via.host, via.port, via.branch) == (
        "TLS",
        "client.biloxi.example.com",
        5061,
        "z9hG4bKnashds7",
    )
    assert msg.from_.tag == "a73kszlfl"
    assert msg.from_.display_name == "Bob"
    assert msg.to.tag is None
    assert msg.call_id == "1j9FpLxk3uxtm8tn@biloxi.example.com"
    assert (msg.cseq.seq, msg.cseq.method) == (1, "REGISTER")
    assert [str(c.uri) for c in msg.contact] == ["sips:bob@client.biloxi.example.com"]
    assert msg.max_forwards == 70
    assert msg.content_length == 0
    assert msg.body == b""


def test_invite_body_and_round_trip() -> None:
    msg = parse(INVITE)
    assert msg.body == SDP
    assert msg.headers.get("Content-Type") == "application/sdp"
    assert msg.contact[0].uri.params.get("transport") == "tcp"
    assert bytes(msg) == INVITE
    assert bytes(parse(bytes(msg))) == INVITE


def test_edit_round_trip_keeps_untouched_lines() -> None:
    odd = REGISTER.replace(b"Max-Forwards: 70\r\n", b"X-Odd  :\tweird ;  value\r\n")
    msg = parse(odd)
    changed = msg.replace(headers=msg.headers.set("CSeq", "2 REGISTER"))
    out = bytes(changed)
    assert b"X-Odd  :\tweird ;  value\r\n" in out
    assert b"CSeq: 2 REGISTER\r\n" in out
    again = parse(out)
    assert again.cseq.seq == 2
    assert again.headers.get("x-odd") == "weird ;  value"


def test_compact_forms_and_case() -> None:
    data = (
        b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\n"
        b"v: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877\r\n"
        b"f: <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        b"t: <sip:carol@chicago.example.com>\r\n"
        b"i: a84b4c76e66710\r\n"
        b"cSeQ: 63104 OPTIONS\r\n"
        b"m: <sip:alice@pc33.atlanta.example.com>\r\n"
        b"k: path, outbound\r\n"
        b"l: 0\r\n\r\n"
    )
    msg = parse(data)
    assert msg.call_id == "a84b4c76e66710"
    assert msg.headers.get("Call-ID") == msg.headers.get("i") == "a84b4c76e66710"
    assert msg.headers.tokens("Supported") == ["path", "outbound"]
    assert msg.via[0].host == "pc33.atlanta.example.com"
    assert msg.cseq.seq == 63104


def test_folding_and_multi_value() -> None:
    data = REGISTER.replace(
        b"Contact: <sips:bob@client.biloxi.example.com>\r\n",
        b"Contact: <sip:a@192.0.2.1>;q=0.5,\r\n <sip:b@192.0.2.2>;expires=60\r\n"
        b'Contact: "Bob, Jr" <sip:c@[2001:db8::1]:5070>\r\n'
        b"Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1, SIP/2.0/UDP p2.example.com"
        b";branch=z9hG4bK2;received=192.0.2.9\r\n",
    )
    msg = parse(data)
    assert [str(c.uri) for c in msg.contact] == [
        "sip:a@192.0.2.1",
        "sip:b@192.0.2.2",
        "sip:c@[2001:db8::1]:5070",
    ]
    assert msg.contact[0].params.get("q") == "0.5"
    assert msg.contact[2].display_name == "Bob, Jr"
    assert msg.contact[2].uri.host == "[2001:db8::1]"
    assert [v.branch for v in msg.via] == ["z9hG4bKnashds7", "z9hG4bK1", "z9hG4bK2"]
    assert msg.via[2].received == "192.0.2.9"
    assert bytes(msg) == data


def test_contact_star() -> None:
    data = REGISTER.replace(b"<sips:bob@client.biloxi.example.com>", b"*")
    msg = parse(data)
    assert msg.contact_star and msg.contact == ()
    with pytest.raises(BadRequest):
        parse(REGISTER.replace(b"<sips:bob@client.biloxi.example.com>", b"*, <sip:x@y>"))


@pytest.mark.parametrize(
    ("text", "kind", "fields"),
    [
        ("sip:alice@atlanta.example.com", SipUri, {"user": "alice", "port": None}),
        (
            "sips:bob:pw@[2001:db8::1]:5061;transport=tls?subject=hi",
            SipUri,
            {"user": "bob", "password": "pw", "host": "[2001:db8::1]", "port": 5061},
        ),
        (
            "sip:%61lice@example.com;maddr=239.255.255.1;ttl=15",
            SipUri,
            {"user": "alice", "host": "example.com"},
        ),
        ("SIP:Alice@Example.COM", SipUri, {"scheme": "sip", "host": "Example.COM"}),
        ("tel:+1-201-555-0123;phone-context=example.com", TelUri, {"number": "+1-201-555-0123"}),
        ("mailto:alice@example.com", AbsoluteUri, {"scheme": "mailto"}),
    ],
)
def test_uri_round_trip(text: str, kind: type, fields: dict[str, object]) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, kind)
    assert str(uri) == text
    for name, value in fields.items():
        assert getattr(uri, name) == value


@pytest.mark.parametrize(
    "text",
    [
        "sip:",
        "sip:user@",
        "sip:a@b:99999",
        "sip:a@[::1",
        "sip:a@1.2.3.256",
        "sip:a b@c",
        "sip:a@b;=x",
        "sip:a@-bad-.com",
        "noscheme",
        "sip:a@b?h",
    ],
)
def test_bad_uri(text: str) -> None:
    with pytest.raises(BadRequest):
        parse_uri(text)


def test_built_uri_and_nameaddr_serialise() -> None:
    uri = SipUri("example.com", user="a b", port=5070)
    assert str(uri) == "sip:a%20b@example.com:5070"
    na = parse_nameaddr('"Q \\"x\\"" <sip:a@b>;tag=1').with_tag("2")
    assert na.display_name == 'Q "x"'
    assert na.tag == "2"
    assert str(na) == '"Q \\"x\\"" <sip:a@b>;tag=2'


def test_via_whitespace_and_rport() -> None:
    via = parse_via("SIP / 2.0 / UDP  host.example.com : 5060 ; branch = z9hG4bKx ; rport")
    assert (via.host, via.port, via.branch, via.rport) == ("host.example.com", 5060, "z9hG4bKx", "")


def test_auth_params() -> None:
    creds = parse_auth(
        'Digest username="bob", realm="biloxi.example.com", nonce="dcd98b7102dd2f0e", '
        'uri="sips:ss2.biloxi.example.com", response="245f23415f11432b3434341c022", '
        'algorithm=MD5, qop=auth, nc=00000001, cnonce="0a4f113b"'
    )
    assert creds.scheme == "Digest"
    assert creds.get("username") == "bob"
    assert creds.get("NC") == "00000001"
    assert creds.get("qop") == "auth"
    with pytest.raises(BadRequest):
        parse_auth('Digest username="bob" realm="x"')


@pytest.mark.parametrize(
    ("data", "error", "reason_part"),
    [
        (REGISTER.replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1), VersionNotSupported, "Version"),
        (
            REGISTER.replace(b"Call-ID: 1j9FpLxk3uxtm8tn@biloxi.example.com\r\n", b""),
            BadRequest,
            "Missing Call-ID",
        ),
        (REGISTER.replace(b"CSeq: 1 REGISTER", b"CSeq: 2147483648 REGISTER"), BadRequest, "CSeq"),
        (
            REGISTER.replace(b"Max-Forwards: 70", b"Max-Forwards: 70\r\nMax-Forwards: 69"),
            BadRequest,
            "Multiple Max-Forwards",
        ),
        (
            REGISTER.replace(b"Content-Length: 0", b"Content-Length: 10"),
            BadRequest,
            "Content-Length larger",
        ),
        (REGISTER.replace(b"From: Bob", b"From: Bob@"), BadRequest, "display-name"),
        (REGISTER.replace(b"\r\n\r\n", b"\r\n"), BadRequest, "empty line"),
        (
            b"REGISTER  sips:x SIP/2.0\r\n" + REGISTER.split(b"\r\n", 1)[1],
            BadRequest,
            "Request-Line",
        ),
    ],
)
def test_errors_name_the_fault(data: bytes, error: type[SipError], reason_part: str) -> None:
    with pytest.raises(error) as info:
        parse(data)
    assert reason_part in info.value.reason


def test_make_response_copies_and_tags() -> None:
    req = parse(REGISTER)
    assert isinstance(req, Request)
    resp = make_response(req, 200, headers=(("Expires", "3600"),), to_tag="tok-1")
    wire = bytes(resp)
    assert wire.startswith(b"SIP/2.0 200 OK\r\n")
    assert b"To: Bob <sips:bob@biloxi.example.com>;tag=tok-1\r\n" in wire
    assert b"Via: SIP/2.0/TLS client.biloxi.example.com:5061;branch=z9hG4bKnashds7\r\n" in wire
    back = parse(wire)
    assert isinstance(back, Response)
    assert (back.status, back.to.tag, back.call_id, back.cseq) == (
        200,
        "tok-1",
        req.call_id,
        req.cseq,
    )
    assert back.headers.get("Expires") == "3600"
    trying = make_response(req, 100, to_tag="x")
    assert parse(bytes(trying)).to.tag is None  # §8.2.6.2: no tag on 100


def test_salvage_answers_broken_request_and_never_ack() -> None:
    broken = REGISTER.replace(b"CSeq: 1 REGISTER", b"CSeq: one REGISTER")
    with pytest.raises(SipError) as info:
        parse(broken)
    answer = salvage_response(broken, info.value, "t1", ("192.0.2.7", 5999))
    assert answer is not None
    resp = parse(answer.replace(b"CSeq: one REGISTER", b"CSeq: 1 REGISTER"))
    assert isinstance(resp, Response)
    assert resp.status == 400
    assert resp.to.tag == "t1"
    assert resp.via[0].received == "192.0.2.7"
    ack = broken.replace(b"REGISTER sips", b"ACK sips")
    assert salvage_response(ack, info.value) is None
    assert salvage_response(b"\x00\xffgarbage", info.value) is None


def test_bad_extension_carries_unsupported() -> None:
    exc = BadExtension(["foo", "bar"])
    assert exc.status == 420
    assert exc.headers == (("Unsupported", "foo, bar"),)


def test_headers_edits() -> None:
    h = Headers.of(("Via", "a"), ("v", "b"), ("X", "1"))
    assert h.get_all("VIA") == ["a", "b"]
    assert h.remove("via").get_all("via") == []
    assert h.prepend("Via", "z").get_all("via") == ["z", "a", "b"]
    assert h.set("x", "2").get_all("X") == ["2"]
    assert bytes(h) == b"Via: a\r\nv: b\r\nX: 1\r\n"


@pytest.mark.parametrize(
    "via",
    [
        "SIP/2.0/UDP 198.51.100.9:5060;branch=z9hG4bK1;rport",
        "SIP/2.0/UDP 198.51.100.9:5060;rport;branch=z9hG4bK1",
        "SIP/2.0/UDP 198.51.100.9:5060;branch=z9hG4bK1",
        "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
        "SIP/2.0/UDP 198.51.100.9:5060;branch=z9hG4bK1;rport=7",
        "SIP/2.0/UDP 198.51.100.9:5060;branch=z9hG4bK1;received=192.0.2.3;rport",
        "SIP/2.0/UDP 198.51.100.9:5060;branch=z9hG4bK1;rport, SIP/2.0/UDP 192.0.2.8;branch=z",
        "SIP/2.0/UDP 198.51.100.9:5060 ; branch=z9hG4bK1 ; rport",
    ],
)
def test_with_received_fast_path_writes_what_stamp_received_writes(via: str) -> None:
    """RFC 3261 §18.2.1 / RFC 3581 §4: the string shortcut equals the Via-building path."""
    from sipfarm.sip.headers import Headers
    from sipfarm.sip.via import stamp_received

    data = (
        f"OPTIONS sip:x@example.com SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n"
        "From: <sip:a@example.com>;tag=1\r\nTo: <sip:x@example.com>\r\nCall-ID: c1\r\n"
        "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    request = parse(data)
    assert isinstance(request, Request)
    got = request.with_received("198.51.100.9", 40000)
    top = request.via[0]
    stamped = stamp_received(top, "198.51.100.9", 40000)
    if stamped is top:
        assert got is request
        return
    assert got.via[0] == stamped
    assert got.via[1:] == request.via[1:]
    again = parse(bytes(got))
    assert again.via == got.via
    assert isinstance(got.headers, Headers) and got.headers.get("call-id") == "c1"
