"""The member's stateless core: literal bytes in, the exact answer (or the drop) out.

The requests are the examples of RFC 3261 (§11.1 OPTIONS, §24.2 the Alice/Bob call)
and RFC 3665 (§2.1 REGISTER, §3.1 INVITE, §3.8 CANCEL) written out byte for byte,
changed one line at a time.  Answers are read with a splitter of this file, not with
the parser under test.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipfarm.actions import Drop, SendResponse, Source
from sipfarm.stateless import StatelessConfig, StatelessCore

TOKEN = "m7"
CONFIG = StatelessConfig(token=TOKEN, allow=("OPTIONS",), accept=("application/sdp",))

#: pc33.atlanta.com as seen by the server (RFC 3261 §11.2 example: received=192.0.2.4).
ALICE = Source("UDP", "192.0.2.4", 5060)

# RFC 3261 §11.1.
OPTIONS = (
    b"OPTIONS sip:carol@chicago.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKhjhs8ass877\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:carol@chicago.com>\r\n"
    b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 63104 OPTIONS\r\n"
    b"Contact: <sip:alice@pc33.atlanta.com>\r\n"
    b"Accept: application/sdp\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

# RFC 3261 §24.2 F1, without its SDP.
INVITE = (
    b"INVITE sip:bob@biloxi.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.com>\r\n"
    b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.com>\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

# RFC 3665 §3.1 F1, with its SDP (151 bytes).
INVITE_SDP = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 151\r\n"
    b"\r\n"
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 client.atlanta.example.com\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.101\r\n"
    b"t=0 0\r\n"
    b"m=audio 49172 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)

# RFC 3665 §2.1 F1.
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

# RFC 3261 §24.2 F13: in the dialog, so its To already has a tag.
BYE = (
    b"BYE sip:alice@pc33.atlanta.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKnashds10\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: Bob <sip:bob@biloxi.com>;tag=a6c85cf\r\n"
    b"To: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 231 BYE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

# RFC 3261 §24.2 F11.
ACK = (
    b"ACK sip:bob@192.0.2.4 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds9\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.com>;tag=a6c85cf\r\n"
    b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 314159 ACK\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

# RFC 3665 §3.8 F6.
CANCEL = (
    b"CANCEL sip:bob@client.biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 1 CANCEL\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

# RFC 3261 §11.2, its SDP left out (and so Content-Type too).
OPTIONS_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKhjhs8ass877;received=192.0.2.4\r\n"
    b"To: <sip:carol@chicago.com>;tag=93810874\r\n"
    b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 63104 OPTIONS\r\n"
    b"Contact: <sip:carol@chicago.com>\r\n"
    b"Contact: <mailto:carol@chicago.com>\r\n"
    b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE\r\n"
    b"Accept: application/sdp\r\n"
    b"Accept-Encoding: gzip\r\n"
    b"Accept-Language: en\r\n"
    b"Supported: foo\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

# RFC 3261 §24.2 F8 (180 Ringing from Bob's proxy to Alice's).
RINGING = (
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP bigbox3.site3.atlanta.com;branch=z9hG4bK77ef4c2312983.1"
    b";received=192.0.2.2\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds;received=192.0.2.1\r\n"
    b"To: Bob <sip:bob@biloxi.com>;tag=a6c85cf\r\n"
    b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
    b"Contact: <sip:bob@192.0.2.4>\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def edit(message: bytes, old: bytes, new: bytes) -> bytes:
    """``message`` with its one occurrence of ``old`` replaced (a typo in a test fails here)."""
    assert message.count(old) == 1, (old, message)
    return message.replace(old, new)


# ------------------------------------------------------------------------ reading answers


@dataclass(frozen=True)
class Wire:
    """A response as it goes on the wire, split without the parser under test."""

    status_line: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def status(self) -> int:
        return int(self.status_line.split(" ")[1])

    def values(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def one(self, name: str) -> str:
        values = self.values(name)
        assert len(values) == 1, f"{name}: {values} in {self.headers}"
        return values[0]

    def to_tag(self) -> str:
        tags = [p[4:] for p in self.one("To").split(";") if p.startswith("tag=")]
        assert len(tags) == 1, self.one("To")
        return tags[0]


def split_wire(data: bytes) -> Wire:
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, f"no empty line after the header: {data!r}"
    start, *lines = head.decode("utf-8", "surrogateescape").split("\r\n")
    headers = []
    for line in lines:
        name, colon, value = line.partition(":")
        assert colon and name and name == name.strip(), f"bad header line {line!r}"
        headers.append((name, value.strip()))
    wire = Wire(start, headers, body)
    assert wire.one("Content-Length") == str(len(body))
    return wire


def answer(data: bytes, source: Source = ALICE, core: StatelessCore | None = None) -> SendResponse:
    action = (core or StatelessCore(CONFIG)).receive(data, source)
    assert isinstance(action, SendResponse), action
    assert action.data.startswith(b"SIP/2.0 "), action.data
    return action


def respond(data: bytes, source: Source = ALICE, core: StatelessCore | None = None) -> Wire:
    return split_wire(answer(data, source, core).data)


def via_parts(value: str) -> tuple[str, dict[str, str | None]]:
    """``sent-protocol sent-by`` and the via-params (order does not matter, RFC 3261 §20.42)."""
    first, *params = value.split(";")
    out: dict[str, str | None] = {}
    for p in params:
        name, eq, val = p.partition("=")
        out[name.lower()] = val if eq else None
    return first, out


def request_header(request: bytes, name: str) -> str:
    """The first ``name`` header value of a literal request (full names only, as written here)."""
    head = request.split(b"\r\n\r\n", 1)[0].decode()
    for line in head.split("\r\n")[1:]:
        n, _, value = line.partition(":")
        if n.lower() == name.lower():
            return value.strip()
    raise AssertionError(f"no {name} in {request!r}")


def assert_copied(wire: Wire, request: bytes) -> None:
    """From, Call-ID and CSeq copied unchanged; To too, less the tag the server adds (§8.2.6.2)."""
    for name in ("From", "Call-ID", "CSeq"):
        assert wire.one(name) == request_header(request, name), name
    to = request_header(request, "To")
    if ";tag=" in to:
        assert wire.one("To") == to
    else:
        assert wire.one("To").startswith(to + ";tag=")


# ------------------------------------------------------------------------------- OPTIONS


def test_options_answered_200_with_allow_accept_supported() -> None:
    wire = respond(OPTIONS)

    assert wire.status_line == "SIP/2.0 200 OK"
    assert_copied(wire, OPTIONS)
    assert wire.one("Allow") == "OPTIONS"
    assert wire.one("Accept") == "application/sdp"
    assert wire.one("Supported") == ""
    assert wire.one("Content-Length") == "0"
    assert wire.body == b""


def test_options_advertises_the_configured_extensions() -> None:
    core = StatelessCore(
        StatelessConfig(token=TOKEN, allow=("OPTIONS",), supported=("path", "outbound"))
    )
    request = edit(OPTIONS, b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nRequire: path\r\n")

    wire = respond(request, core=core)

    assert wire.status_line == "SIP/2.0 200 OK"
    assert wire.one("Supported") == "path, outbound"


def test_to_tag_added_starting_with_the_token() -> None:
    wire = respond(OPTIONS)

    tag = wire.to_tag()
    assert tag.startswith(TOKEN)
    assert len(tag) > len(TOKEN)
    assert wire.one("To") == f"<sip:carol@chicago.com>;tag={tag}"


def test_retransmission_gets_the_same_answer() -> None:
    """A stateless UAS answers a retransmission with the same To-tag (RFC 3261 §8.2.7)."""
    core = StatelessCore(CONFIG)

    first = answer(OPTIONS, core=core)
    again = answer(OPTIONS, core=core)

    assert split_wire(first.data).to_tag() == split_wire(again.data).to_tag()
    assert first == again


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"branch=z9hG4bKhjhs8ass877\r\nMax-Forwards: 70\r\nTo: <sip:carol@chicago.com>\r\n"
         b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\nCall-ID: a84b4c76e66710\r\n"
         b"CSeq: 63104",
         b"branch=z9hG4bKhjhs8ass878\r\nMax-Forwards: 70\r\nTo: <sip:carol@chicago.com>\r\n"
         b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\nCall-ID: a84b4c76e66710\r\n"
         b"CSeq: 63105"),
        (b"Call-ID: a84b4c76e66710", b"Call-ID: 5f1a3bd0e8f1"),
        (b";tag=1928301774", b";tag=7382991"),
    ],
    ids=["next-cseq-and-branch", "other-call-id", "other-from-tag"],
)  # fmt: skip
def test_different_request_gets_a_different_to_tag(old: bytes, new: bytes) -> None:
    core = StatelessCore(CONFIG)

    first = respond(OPTIONS, core=core).to_tag()
    other = respond(edit(OPTIONS, old, new), core=core).to_tag()

    assert other.startswith(TOKEN)
    assert other != first


# ------------------------------------------------------------ Via, received, rport, address


@pytest.mark.parametrize(
    ("via", "source", "params", "address"),
    [
        # §18.2.1: sent-by is a name: received added; §18.2.2: received ip, port 5060.
        ("SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKhjhs8ass877",
         ("192.0.2.4", 5060), {"branch": "z9hG4bKhjhs8ass877", "received": "192.0.2.4"},
         ("192.0.2.4", 5060)),
        # §18.2.2: without rport the Via port counts, not the source port.
        ("SIP/2.0/UDP pc33.atlanta.com:5070;branch=z9hG4bKhjhs8ass877",
         ("192.0.2.4", 40000), {"branch": "z9hG4bKhjhs8ass877", "received": "192.0.2.4"},
         ("192.0.2.4", 5070)),
        ("SIP/2.0/UDP 10.1.1.1;branch=z9hG4bKhjhs8ass877",
         ("192.0.2.1", 9988), {"branch": "z9hG4bKhjhs8ass877", "received": "192.0.2.1"},
         ("192.0.2.1", 5060)),
        # §18.2.1: sent-by is the source address: nothing added.
        ("SIP/2.0/UDP 192.0.2.4:5062;branch=z9hG4bKhjhs8ass877",
         ("192.0.2.4", 40000), {"branch": "z9hG4bKhjhs8ass877"},
         ("192.0.2.4", 5062)),
        # RFC 3581 §4 example: rport filled with the source port, received added,
        # the answer goes to the source ip:port.
        ("SIP/2.0/UDP 10.1.1.1:4540;rport;branch=z9hG4bKkjshdyff",
         ("192.0.2.1", 9988),
         {"rport": "9988", "branch": "z9hG4bKkjshdyff", "received": "192.0.2.1"},
         ("192.0.2.1", 9988)),
        # RFC 3581 §4: received is added even when it equals the sent-by host.
        ("SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKhjhs8ass877;rport",
         ("192.0.2.4", 40000),
         {"branch": "z9hG4bKhjhs8ass877", "rport": "40000", "received": "192.0.2.4"},
         ("192.0.2.4", 40000)),
    ],
    ids=["name", "name-port", "other-ip", "same-ip", "rport-rfc3581", "rport-same-ip"],
)  # fmt: skip
def test_via_stamped_and_answer_addressed(
    via: str,
    source: tuple[str, int],
    params: dict[str, str | None],
    address: tuple[str, int],
) -> None:
    request = edit(
        OPTIONS,
        b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKhjhs8ass877\r\n",
        f"Via: {via}\r\n".encode(),
    )

    action = answer(request, Source("UDP", *source))
    wire = split_wire(action.data)

    sent_by, got = via_parts(wire.one("Via"))
    assert sent_by == via.split(";")[0]
    assert got == params
    assert action.address == address
    if "received" not in params:
        assert wire.one("Via") == via  # untouched, byte for byte


def test_only_the_top_via_is_stamped_all_are_copied_in_order() -> None:
    """RFC 3261 §8.2.6.2: every Via, in order; §18.2.1: received only on the top one."""
    vias = [
        "SIP/2.0/UDP server10.biloxi.com;branch=z9hG4bK4b43c2ff8.1",
        "SIP/2.0/UDP bigbox3.site3.atlanta.com;branch=z9hG4bK77ef4c2312983.1;received=192.0.2.2",
        "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKhjhs8ass877;received=192.0.2.1",
    ]
    request = edit(
        OPTIONS,
        b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKhjhs8ass877\r\n",
        b"".join(f"Via: {v}\r\n".encode() for v in vias),
    )

    action = answer(request, Source("UDP", "192.0.2.3", 5060))
    got = split_wire(action.data).values("Via")

    assert len(got) == 3
    assert via_parts(got[0]) == (
        "SIP/2.0/UDP server10.biloxi.com",
        {"branch": "z9hG4bK4b43c2ff8.1", "received": "192.0.2.3"},
    )
    assert got[1:] == vias[1:]
    assert action.address == ("192.0.2.3", 5060)


def test_comma_joined_vias_keep_their_order() -> None:
    request = edit(
        OPTIONS,
        b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKhjhs8ass877\r\n",
        b"Via: SIP/2.0/UDP 10.1.1.1:4540;rport;branch=z9hG4bKkjshdyff, "
        b"SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKhjhs8ass877\r\n",
    )

    action = answer(request, Source("UDP", "192.0.2.1", 9988))
    wire = split_wire(action.data)

    elems = [e.strip() for line in wire.values("Via") for e in line.split(",")]
    assert len(elems) == 2
    assert via_parts(elems[0]) == (
        "SIP/2.0/UDP 10.1.1.1:4540",
        {"rport": "9988", "branch": "z9hG4bKkjshdyff", "received": "192.0.2.1"},
    )
    assert elems[1] == "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKhjhs8ass877"
    assert action.address == ("192.0.2.1", 9988)


# ---------------------------------------------------------------- the rules every request meets


def test_max_forwards_zero_options_answered_by_the_server() -> None:
    """RFC 3261 §11: an OPTIONS with Max-Forwards 0 is for this server to answer."""
    wire = respond(edit(OPTIONS, b"Max-Forwards: 70", b"Max-Forwards: 0"))

    assert wire.status_line == "SIP/2.0 200 OK"
    assert wire.one("Allow") == "OPTIONS"


def test_max_forwards_zero_invite_483() -> None:
    wire = respond(edit(INVITE, b"Max-Forwards: 70", b"Max-Forwards: 0"))

    assert wire.status_line == "SIP/2.0 483 Too Many Hops"
    assert_copied(wire, INVITE)


@pytest.mark.parametrize(
    "request_", [OPTIONS, INVITE, REGISTER], ids=["OPTIONS", "INVITE", "REGISTER"]
)
def test_require_unknown_extension_420_with_unsupported(request_: bytes) -> None:
    """RFC 3261 §8.2.2.3."""
    request = edit(request_, b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nRequire: foo\r\n")

    wire = respond(request)

    assert wire.status_line == "SIP/2.0 420 Bad Extension"
    assert wire.one("Unsupported") == "foo"
    assert_copied(wire, request)


def test_unknown_request_uri_scheme_416() -> None:
    """RFC 3261 §8.2.2.1."""
    request = edit(INVITE, b"INVITE sip:bob@biloxi.com SIP/2.0", b"INVITE http://x SIP/2.0")

    wire = respond(request)

    assert wire.status_line == "SIP/2.0 416 Unsupported URI Scheme"
    assert_copied(wire, request)


@pytest.mark.parametrize(
    "request_", [INVITE, INVITE_SDP, REGISTER, BYE], ids=["INVITE", "INVITE-SDP", "REGISTER", "BYE"]
)
def test_known_method_not_served_405_with_allow(request_: bytes) -> None:
    """RFC 3261 §8.2.1: 405 lists the methods the server does allow."""
    wire = respond(request_)

    assert wire.status_line == "SIP/2.0 405 Method Not Allowed"
    assert wire.one("Allow") == "OPTIONS"
    assert wire.body == b""
    assert_copied(wire, request_)


def test_in_dialog_request_keeps_its_to_tag() -> None:
    """RFC 3261 §8.2.6.2: a To that has a tag is copied as is; no second tag."""
    wire = respond(BYE)

    assert wire.one("To") == "Alice <sip:alice@atlanta.com>;tag=1928301774"


def test_unknown_method_501_with_allow() -> None:
    """RFC 3261 §21.5.2."""
    request = edit(
        edit(OPTIONS, b"OPTIONS sip:carol@chicago.com", b"FOO sip:carol@chicago.com"),
        b"CSeq: 63104 OPTIONS",
        b"CSeq: 63104 FOO",
    )

    wire = respond(request)

    assert wire.status_line == "SIP/2.0 501 Not Implemented"
    assert wire.one("Allow") == "OPTIONS"
    assert_copied(wire, request)


def test_cseq_method_mismatch_400() -> None:
    """RFC 3261 §8.1.1.5: the CSeq method matches the request's."""
    request = edit(OPTIONS, b"CSeq: 63104 OPTIONS", b"CSeq: 63104 INVITE")

    wire = respond(request)

    assert wire.status == 400
    assert wire.status_line.startswith("SIP/2.0 400 ")
    assert_copied(wire, request)


@pytest.mark.parametrize(
    "request_",
    [
        ACK,
        edit(ACK, b"Max-Forwards: 70", b"Max-Forwards: 0"),
        edit(ACK, b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nRequire: foo\r\n"),
        edit(ACK, b"ACK sip:bob@192.0.2.4", b"ACK http://x"),
        edit(ACK, b"Content-Length: 0", b"Content-Length: x"),
        edit(ACK, b"Content-Length: 0", b"Content-Length: 5"),
        edit(ACK, b"SIP/2.0\r\n", b"SIP/7.0\r\n"),
    ],
    ids=["ACK", "max-forwards-0", "require", "http-uri", "bad-length", "short-body", "SIP/7.0"],
)
def test_ack_is_never_answered(request_: bytes) -> None:
    """RFC 3261 §17.2.1: no transaction matches it statelessly; an ACK gets no response."""
    action = StatelessCore(CONFIG).receive(request_, ALICE)

    assert isinstance(action, Drop), action


@pytest.mark.parametrize(
    "request_",
    [CANCEL, edit(CANCEL, b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nRequire: foo\r\n")],
    ids=["CANCEL", "require-ignored"],
)
def test_cancel_481(request_: bytes) -> None:
    """RFC 3261 §9.2: no transaction to cancel; Require does not apply to CANCEL (§8.2.2.3)."""
    action = answer(request_, Source("TCP", "192.0.2.101", 49152))
    wire = split_wire(action.data)

    assert wire.status_line == "SIP/2.0 481 Call/Transaction Does Not Exist"
    assert_copied(wire, request_)


# ----------------------------------------------------------------- what is dropped, and counted


@pytest.mark.parametrize("response", [OPTIONS_200, RINGING], ids=["200", "180"])
def test_response_dropped_as_stray(response: bytes) -> None:
    """RFC 3261 §18.1.2: a response that matches no client transaction is dropped."""
    core = StatelessCore(CONFIG)

    action = core.receive(response, ALICE)

    assert isinstance(action, Drop), action
    assert action.reason == "stray_response"
    assert core.counters["stray_response"] == 1


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\xff" * 50,
        b"hello",
        b"",
        b"SIP/2.0 200 OK\r\n\r\n",
        # broken, and Call-ID missing: nothing to build a response from
        edit(edit(OPTIONS, b"Call-ID: a84b4c76e66710\r\n", b""), b"Length: 0", b"Length: x"),
    ],
    ids=["binary", "hello", "empty", "bare-status-line", "no-call-id"],
)
def test_garbage_dropped_and_counted(data: bytes) -> None:
    core = StatelessCore(CONFIG)

    first = core.receive(data, ALICE)
    second = core.receive(data, ALICE)

    assert isinstance(first, Drop), first
    assert first.reason == "garbage"
    assert second == first
    assert core.counters["garbage"] == 2


@pytest.mark.parametrize(
    ("old", "new", "status_line"),
    [
        (b"Content-Length: 0", b"Content-Length: x", "SIP/2.0 400 "),
        (b"Content-Length: 0", b"Content-Length: -1", "SIP/2.0 400 "),
        # RFC 3261 §18.3: a datagram that ends before its body: 400.
        (b"Content-Length: 0", b"Content-Length: 25", "SIP/2.0 400 "),
        (b"Max-Forwards: 70", b"Max-Forwards: seventy", "SIP/2.0 400 "),
        (b"CSeq: 63104 OPTIONS", b"CSeq: 63104x OPTIONS", "SIP/2.0 400 "),
        (b"sip:carol@chicago.com SIP/2.0", b"sip:carol@chicago.com SIP/7.0",
         "SIP/2.0 505 Version Not Supported"),
    ],
    ids=["length-x", "length-negative", "short-body", "max-forwards", "cseq-number", "SIP/7.0"],
)  # fmt: skip
def test_broken_request_with_its_headers_intact_is_answered(
    old: bytes, new: bytes, status_line: str
) -> None:
    """RFC 3261 §8.2.6.2: what a response copies survives, so the error is answered."""
    request = edit(OPTIONS, old, new)
    core = StatelessCore(CONFIG)

    action = answer(request, core=core)
    again = answer(request, core=core)
    wire = split_wire(action.data)

    assert wire.status_line.startswith(status_line)
    if not status_line.endswith(" "):
        assert wire.status_line == status_line
    assert wire.values("Via")[0].startswith(
        "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKhjhs8ass877"
    )
    assert wire.one("From") == "Alice <sip:alice@atlanta.com>;tag=1928301774"
    assert wire.one("Call-ID") == "a84b4c76e66710"
    assert wire.to_tag().startswith(TOKEN)
    assert action == again  # a retransmission gets the same answer, same To-tag
    assert action.address == (ALICE.host, ALICE.port)
    if b"CSeq: 63104 OPTIONS" in request:
        assert wire.one("CSeq") == "63104 OPTIONS"


# --------------------------------------------------------------------------------- invariant


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=2048),
        st.builds(
            lambda base, cut, junk: base[:cut] + junk + base[cut:],
            st.sampled_from([OPTIONS, INVITE, INVITE_SDP, REGISTER, BYE, ACK, CANCEL]),
            st.integers(0, len(OPTIONS)),
            st.binary(max_size=16),
        ),
    )
)
def test_any_input_is_answered_or_dropped(data: bytes) -> None:
    """Whatever arrives, the core returns SendResponse or Drop; it never raises."""
    action = StatelessCore(CONFIG).receive(data, ALICE)

    if isinstance(action, SendResponse):
        wire = split_wire(action.data)
        assert 200 <= wire.status <= 699
    else:
        assert isinstance(action, Drop)
        assert action.reason


@pytest.mark.parametrize(
    ("via", "address"),
    [
        ("SIP/2.0/UDP pc33.atlanta.com:5070;branch=z9hG4bKhjhs8ass877", ("192.0.2.4", 5070)),
        ("SIP/2.0/UDP pc33.atlanta.com:5070;branch=z9hG4bKhjhs8ass877;rport",
         ("192.0.2.4", 40000)),
    ],
    ids=["no-rport", "rport"],
)  # fmt: skip
def test_broken_request_answer_addressed_like_any_other(via: str, address: tuple[str, int]) -> None:
    """RFC 3261 §18.2.2 / RFC 3581 §4 hold for every response, a salvaged one too:
    without rport, the received address and the Via port; with rport, the source port."""
    request = edit(
        edit(
            OPTIONS,
            b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKhjhs8ass877\r\n",
            f"Via: {via}\r\n".encode(),
        ),
        b"Content-Length: 0",
        b"Content-Length: x",
    )

    action = answer(request, Source("UDP", "192.0.2.4", 40000))

    assert split_wire(action.data).status == 400
    assert action.address == address


def test_broken_request_answer_via_stamped_like_any_other() -> None:
    """The Via a response copies is the one the server transport stamped (RFC 3261
    §18.2.1 received, RFC 3581 §4 rport), for a request that did not parse too."""
    request = edit(
        edit(
            OPTIONS,
            b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKhjhs8ass877\r\n",
            b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKhjhs8ass877;rport\r\n",
        ),
        b"Content-Length: 0",
        b"Content-Length: x",
    )

    wire = split_wire(answer(request, Source("UDP", "192.0.2.4", 40000)).data)

    assert wire.status == 400
    assert via_parts(wire.one("Via")) == (
        "SIP/2.0/UDP pc33.atlanta.com",
        {"branch": "z9hG4bKhjhs8ass877", "rport": "40000", "received": "192.0.2.4"},
    )
