"""The router's fast read, :func:`sipfarm.sip.peek`, and its C accelerator.

Literal messages (RFC 3665 flows, RFC 3261/3581 forms) give exact fields through both
the pure-Python reference ``_peek_py`` and ``peek`` (the C read when it is built); a
first Via, Call-ID, CSeq or Route line in another than its plain shape, or a SIP version
other than 2.0, sends the message to the full parser, and a malformed start line is
refused. The C read ``sipfarm.sip._speedups.peek`` answers like the reference on the
RFC 4475 / RFC 5118 corpus, on its mutations (the mutators of ``loadtest/fuzz_parser.py``)
and on generated header lines, and hands a message back (None) exactly when the reference
does not read it itself; on arbitrary bytes it never crashes.
"""

from __future__ import annotations

import importlib
import importlib.util
import operator
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st
from sipcorpus import CORPUS, mutated

from sipfarm.sip import Peek, SipError, peek
from sipfarm.sip.errors import BadRequest, VersionNotSupported

PEEK = importlib.import_module("sipfarm.sip.peek")  # the module; sipfarm.sip.peek is the function

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

CPeek = Callable[[bytes], tuple[Any, ...] | None]


@pytest.fixture(scope="module")
def c_peek() -> CPeek:
    """The C read; the test is skipped where it is not built, and fails in CI, which builds it."""
    if PEEK._peek_c is None:
        if os.environ.get("CI"):
            pytest.fail("sipfarm.sip._speedups is not built in CI (install.sh builds it)")
        pytest.skip("sipfarm.sip._speedups is not built (no C compiler at install time)")
    c: CPeek = PEEK._peek_c
    return c


def _message(*lines: str, body: str = "") -> bytes:
    """Header lines joined by CRLF, the empty line, the body."""
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


# RFC 3665 §2.1 F1.
REGISTER = _message(
    "REGISTER sips:ss2.biloxi.example.com SIP/2.0",
    "Via: SIP/2.0/TLS client.biloxi.example.com:5061;branch=z9hG4bKnashds7",
    "Max-Forwards: 70",
    "From: Bob <sips:bob@biloxi.example.com>;tag=a73kszlfl",
    "To: Bob <sips:bob@biloxi.example.com>",
    "Call-ID: 1j9FpLxk3uxtm8tn@biloxi.example.com",
    "CSeq: 1 REGISTER",
    "Contact: <sips:bob@client.biloxi.example.com>",
    "Content-Length: 0",
)

# RFC 3665 §3.1 F1; the body's v=, t= and i= lines are not header fields.
SDP = (
    "v=0\r\no=alice 2890844526 2890844526 IN IP4 client.atlanta.example.com\r\ns=-\r\n"
    "i=A Seminar\r\nc=IN IP4 192.0.2.101\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
)
INVITE = _message(
    "INVITE sip:bob@biloxi.example.com SIP/2.0",
    "Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9",
    "Max-Forwards: 70",
    "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl",
    "To: Bob <sip:bob@biloxi.example.com>",
    "Call-ID: 3848276298220188511@atlanta.example.com",
    "CSeq: 1 INVITE",
    "Contact: <sip:alice@client.atlanta.example.com;transport=tcp>",
    "Content-Type: application/sdp",
    f"Content-Length: {len(SDP)}",
    body=SDP,
)

# RFC 3665 §3.1 F4, its folded Via on one line.
OK = _message(
    "SIP/2.0 200 OK",
    "Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101",
    "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl",
    "To: Bob <sip:bob@biloxi.example.com>;tag=8321234356",
    "Call-ID: 3848276298220188511@atlanta.example.com",
    "CSeq: 1 INVITE",
    "Contact: <sip:bob@client.biloxi.example.com;transport=tcp>",
    "Content-Length: 0",
)

# RFC 3665 §3.2 F15, as the RFC writes it: Route folded over two lines.
ACK_FOLDED = _message(
    "ACK sip:bob@client.biloxi.example.com SIP/2.0",
    "Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74b76",
    "Max-Forwards: 70",
    "Route: <sip:ss1.atlanta.example.com;lr>,",
    " <sip:ss2.biloxi.example.com;lr>",
    "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl",
    "To: Bob <sip:bob@biloxi.example.com>;tag=314159",
    "Call-ID: 3848276298220188511@atlanta.example.com",
    "CSeq: 2 ACK",
    "Content-Length: 0",
)
ACK = ACK_FOLDED.replace(b",\r\n <", b", <")

# RFC 3261 §7.3.3 compact forms.
COMPACT = _message(
    "INVITE sip:bob@biloxi.example.com SIP/2.0",
    "v: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds",
    "f: Alice <sip:alice@atlanta.example.com>;tag=1928301774",
    "t: Bob <sip:bob@biloxi.example.com>",
    "i: a84b4c76e66710@pc33.atlanta.example.com",
    "CSeq: 314159 INVITE",
    "m: <sip:alice@pc33.atlanta.example.com>",
    "l: 0",
)

# Header names in any case, white space before the colon and around '/', ';' and '='.
MIXED = _message(
    "OPTIONS sip:Carol@Chicago.example.com SIP/2.0",
    "vIA :SIP / 2.0 / udp \tHost.Example.COM:5060 ; BRANCH = z9hG4bKMiXeD ; RPort",
    "cALL-iD\t: Mixed@Case",
    "cseq :\t7\tOPTIONS",
    "tO : <sip:carol@chicago.example.com> ; TAG = AbC",
    "rOUTE : <sip:P1.example.com;LR>",
)

LITERALS = {
    "register": (REGISTER, Peek(
        b"REGISTER", None, b"sips:ss2.biloxi.example.com", b"z9hG4bKnashds7",
        b"client.biloxi.example.com:5061", None, b"1j9FpLxk3uxtm8tn@biloxi.example.com", 1,
        b"REGISTER", None, None,
    )),
    "register-leading-crlf": (b"\r\n\r\n" + REGISTER, Peek(
        b"REGISTER", None, b"sips:ss2.biloxi.example.com", b"z9hG4bKnashds7",
        b"client.biloxi.example.com:5061", None, b"1j9FpLxk3uxtm8tn@biloxi.example.com", 1,
        b"REGISTER", None, None,
    )),
    "invite-sdp": (INVITE, Peek(
        b"INVITE", None, b"sip:bob@biloxi.example.com", b"z9hG4bK74bf9",
        b"client.atlanta.example.com:5060", None, b"3848276298220188511@atlanta.example.com", 1,
        b"INVITE", None, None,
    )),
    "200": (OK, Peek(
        None, 200, None, b"z9hG4bK74bf9", b"client.atlanta.example.com:5060", None,
        b"3848276298220188511@atlanta.example.com", 1, b"INVITE", b"8321234356", None,
    )),
    "ack-route": (ACK, Peek(
        b"ACK", None, b"sip:bob@client.biloxi.example.com", b"z9hG4bK74b76",
        b"client.atlanta.example.com:5060", None, b"3848276298220188511@atlanta.example.com", 2,
        b"ACK", b"314159", b"sip:ss1.atlanta.example.com;lr",
    )),
    "ack-route-folded": (ACK_FOLDED, Peek(
        b"ACK", None, b"sip:bob@client.biloxi.example.com", b"z9hG4bK74b76",
        b"client.atlanta.example.com:5060", None, b"3848276298220188511@atlanta.example.com", 2,
        b"ACK", b"314159", b"sip:ss1.atlanta.example.com;lr",
    )),
    "compact": (COMPACT, Peek(
        b"INVITE", None, b"sip:bob@biloxi.example.com", b"z9hG4bK776asdhds",
        b"pc33.atlanta.example.com", None, b"a84b4c76e66710@pc33.atlanta.example.com", 314159,
        b"INVITE", None, None,
    )),
    "mixed-case": (MIXED, Peek(
        b"OPTIONS", None, b"sip:Carol@Chicago.example.com", b"z9hG4bKMiXeD",
        b"Host.Example.COM:5060", b"", b"Mixed@Case", 7, b"OPTIONS", b"AbC",
        b"sip:P1.example.com;LR",
    )),
}  # fmt: skip

#: Implementations that must give the literal answers: the reference and the dispatcher.
READS = {"python": PEEK._peek_py, "peek": peek}


@pytest.mark.parametrize("read", READS.values(), ids=READS.keys())
@pytest.mark.parametrize("name", LITERALS)
def test_literal(read: Callable[[bytes], Peek], name: str) -> None:
    data, want = LITERALS[name]
    got = read(data)
    assert got == want
    assert [type(v) for v in got] == [type(v) for v in want]


@pytest.mark.parametrize("name", [n for n in LITERALS if "folded" not in n])
def test_literal_read_in_c(c_peek: CPeek, name: str) -> None:
    data, want = LITERALS[name]
    assert c_peek(data) == tuple(want)


def test_folded_goes_to_the_reference(c_peek: CPeek) -> None:
    assert c_peek(ACK_FOLDED) is None
    assert c_peek(ACK.replace(b"\r\n", b"\n")) is None  # bare LF line ends
    assert c_peek(ACK[: ACK.index(b"\r\n\r\n") + 2]) is None  # no end of the header block


def _via(params: str) -> bytes:
    return _message("BYE sip:a@b SIP/2.0", f"Via: SIP/2.0/UDP 192.0.2.1:5060{params}")


@pytest.mark.parametrize("read", READS.values(), ids=READS.keys())
@pytest.mark.parametrize(
    ("params", "branch", "rport"),
    [
        ("", None, None),
        (";rport;branch=z9hG4bKa", b"z9hG4bKa", b""),  # RFC 3581 §3: asked, no value
        (";branch=z9hG4bKa;received=192.0.2.9;rport=49152", b"z9hG4bKa", b"49152"),  # §4
        (" ; rport = 5060 ; branch = z9hG4bKa", b"z9hG4bKa", b"5060"),
        (";RPORT=;Branch=z9hG4bKa", b"z9hG4bKa", b""),
        (";rportx;rport=50x;branch=z9hG4bKa", b"z9hG4bKa", None),  # neither is an rport
        (";branch=z9hG4bK-.!%*_+`'~;rport", b"z9hG4bK-.!%*_+`'~", b""),  # RFC 3261 token chars
        (";branch=;branch=z9hG4bKb", b"z9hG4bKb", None),  # an empty value is skipped
        (";branch=z9hG4bK1, SIP/2.0/UDP h2;branch=z9hG4bK2;rport", b"z9hG4bK1", None),
    ],
)
def test_via_params(
    read: Callable[[bytes], Peek], params: str, branch: bytes | None, rport: bytes | None
) -> None:
    p = read(_via(params))
    assert (p.sent_by, p.branch, p.rport) == (b"192.0.2.1:5060", branch, rport)


def _to(value: str) -> bytes:
    return _message("SIP/2.0 180 Ringing", f"To:{value}", "To: <sip:later@b>;tag=second")


@pytest.mark.parametrize("read", READS.values(), ids=READS.keys())
@pytest.mark.parametrize(
    ("value", "tag"),
    [
        (" Bob <sip:bob@biloxi.example.com>", None),
        (" <sip:bob@biloxi.example.com;tag=inuri>", None),  # a URI parameter, not the tag
        (" <sip:bob@biloxi.example.com;tag=inuri>;tag=after", b"after"),
        (" sip:bob@biloxi.example.com;tag=plain", b"plain"),  # addr-spec form: no <>
        (' "a>b" <sip:bob@b> ; TAG = Q1', b"Q1"),  # searched after the last '>'
        ("", None),  # only the first To counts
    ],
)
def test_to_tag(read: Callable[[bytes], Peek], value: str, tag: bytes | None) -> None:
    assert read(_to(value)).to_tag == tag


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"SIP/2.0 2x0 OK\r\n\r\n", "Malformed Status-Line"),
        (b"SIP/2.0  200 OK\r\n\r\n", "Malformed Status-Line"),
        (b"SIP/2.0 200\r\n\r\n", "Malformed Status-Line"),  # RFC 3261 §7.2: SP after the code
        (b"SIP/2.0 2000 OK\r\n\r\n", "Malformed Status-Line"),
        (b"SIP/2.0 099 Early\r\n\r\n", "Malformed Status-Line"),
        (b"SIP/2.0 700 Late\r\n\r\n", "Malformed Status-Line"),
        (b"SIP/3.0 200 OK\r\n\r\n", "Malformed Status-Line"),
        (b"SIP/2.00 200 OK\r\n\r\n", "Malformed Status-Line"),
        (b"INVITE sip:bob@biloxi.example.com\r\n\r\n", "Malformed Request-Line"),
        (b"INVITE  sip:bob@biloxi.example.com SIP/2.0\r\n\r\n", "Malformed Request-Line"),
        (b" sip:bob@biloxi.example.com SIP/2.0\r\n\r\n", "Malformed Request-Line"),
        (b"IN<VITE sip:bob@biloxi.example.com SIP/2.0\r\n\r\n", "Malformed Request-Line"),
        (b"INVITE sip:bob@biloxi.example.com HTTP/1.1\r\n\r\n", "Malformed Request-Line"),
        (b"INVITE sip:bob@biloxi.example.com SIP/2\r\n\r\n", "Malformed Request-Line"),
        (b"INVITE sip:bob@biloxi.example.com SIP/2.0 \r\n\r\n", "Malformed Request-Line"),
        (b"INVITE sip:bob\t@biloxi.example.com SIP/2.0\r\n\r\n", "Malformed Request-Line"),
        (b"\xc3\xa9 sip:bob@biloxi.example.com SIP/2.0\r\n\r\n", "Malformed Request-Line"),
    ],
)
@pytest.mark.parametrize("read", READS.values(), ids=READS.keys())
def test_not_sip(read: Callable[[bytes], Peek], data: bytes, reason: str) -> None:
    with pytest.raises(BadRequest) as info:
        read(data)
    assert info.value.reason == reason


# A complete OPTIONS (RFC 3261 §11) that the full parser accepts; full() puts the header
# lines given first and adds each of these it does not name.
_BASE = {
    "via": "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877",
    "max-forwards": "Max-Forwards: 70",
    "to": "To: <sip:carol@chicago.example.com>",
    "from": "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774",
    "call-id": "Call-ID: a84b4c76e66710",
    "cseq": "CSeq: 63104 OPTIONS",
    "content-length": "Content-Length: 0",
}
_COMPACT_NAMES = {"v": "via", "i": "call-id", "t": "to", "f": "from", "l": "content-length"}


def full(*lines: str, start: str = "OPTIONS sip:carol@chicago.example.com SIP/2.0") -> bytes:
    named = {_COMPACT_NAMES.get(k, k) for k in (x.partition(":")[0].strip().lower() for x in lines)}
    rest = [line for k, line in _BASE.items() if k not in named]
    return _message(start, *lines, *rest)


OPTIONS_PEEK = Peek(
    b"OPTIONS", None, b"sip:carol@chicago.example.com", b"z9hG4bKhjhs8ass877",
    b"pc33.atlanta.example.com", None, b"a84b4c76e66710", 63104, b"OPTIONS", None, None,
)  # fmt: skip

# The first line of each header decides: a shape the fast read does not know sends the
# message to the full parser, which reads it right or refuses it (RFC 3261 §20).
FULL_PARSER = {
    # RFC 3261 §20.42: sent-by with white space before the port
    "via-port-apart": (
        full("Via: SIP/2.0/UDP host :5060;branch=z9hG4bKa"),
        OPTIONS_PEEK._replace(sent_by=b"host:5060", branch=b"z9hG4bKa"),
    ),
    # a quoted-string holding a comma in the top via-parm
    "via-quoted": (
        full('Via: SIP/2.0/UDP h;x="a,b";branch=z9hG4bKq'),
        OPTIONS_PEEK._replace(sent_by=b"h", branch=b"z9hG4bKq"),
    ),
    # a transport token with a '-': the top Via is still the first line, not the second
    "via-transport-token": (
        full("Via: SIP/2.0/TLS-SCTP h1;branch=z9hG4bK1", "Via: SIP/2.0/UDP h2;branch=z9hG4bK2"),
        OPTIONS_PEEK._replace(sent_by=b"h1", branch=b"z9hG4bK1"),
    ),
    "via-compact-first": (
        full("v: SIP/2.0/UDP h1 junk;branch=z9hG4bK1", "Via: SIP/2.0/UDP h2;branch=z9hG4bK2"),
        BadRequest("Bad host"),
    ),
    "via-empty-first": (
        full("VIA:", "Via: SIP/2.0/UDP h2;branch=z9hG4bK2"),
        BadRequest("Bad Via: sent-protocol"),
    ),
    "call-id-two-words": (full("Call-ID: a b"), BadRequest("Bad Call-ID")),
    "call-id-nul": (full("i: a\x00b"), BadRequest("Bad Call-ID")),
    "call-id-utf8": (
        full("Call-ID: caf\u00e9@h"),
        OPTIONS_PEEK._replace(call_id="caf\u00e9@h".encode()),
    ),
    "cseq-2**31": (full("CSeq: 2147483648 OPTIONS"), BadRequest("CSeq number too large")),
    "cseq-trailing": (full("CSeq: 1 OPTIONS x"), BadRequest("Bad CSeq")),
    "cseq-first-line": (
        full("CSeq: 1", "CSeq: 2 OPTIONS"),
        BadRequest("Multiple CSeq header fields"),
    ),
    # RFC 3261 §20: in the addr-spec form the parameters are the header's, not the URI's
    "route-addr-spec": (
        full("Route: sip:p1.example.com;lr", "Route: <sip:p2.example.com;lr>"),
        OPTIONS_PEEK._replace(route=b"sip:p1.example.com"),
    ),
    "route-quoted-name": (
        full('Route: "p<1>" <sip:p1.example.com;lr>'),
        OPTIONS_PEEK._replace(route=b"sip:p1.example.com;lr"),
    ),
    # a SIP version other than 2.0: the parser answers 505 (RFC 3261 §21.5.6)
    "version-3.0": (
        full(start="OPTIONS sip:carol@chicago.example.com SIP/3.0"),
        VersionNotSupported(),
    ),
}


@pytest.mark.parametrize("read", READS.values(), ids=READS.keys())
@pytest.mark.parametrize("name", FULL_PARSER)
def test_first_line_decides(read: Callable[[bytes], Peek], name: str) -> None:
    data, want = FULL_PARSER[name]
    if isinstance(want, SipError):
        with pytest.raises(SipError) as info:
            read(data)
        assert (type(info.value), info.value.reason) == (type(want), want.reason)
    else:
        assert read(data) == want
    assert goes_to_parser(data)


@pytest.mark.parametrize("name", FULL_PARSER)
def test_c_hands_full_parser_cases_back(c_peek: CPeek, name: str) -> None:
    assert c_peek(FULL_PARSER[name][0]) is None


# Plain shapes that stay on the fast path.
FAST = {
    "base": (full(), OPTIONS_PEEK),
    "response-lower-case": (
        full(start="sip/2.0 180 Ringing"),
        OPTIONS_PEEK._replace(method=None, status=180, request_uri=None),
    ),
    "request-lower-case-version": (
        full(start="OPTIONS sip:carol@chicago.example.com sip/2.0"),
        OPTIONS_PEEK,
    ),
    "method-token": (
        full(start="X-Foo.1!%*_+`'~ sip:carol@chicago.example.com SIP/2.0"),
        OPTIONS_PEEK._replace(method=b"X-Foo.1!%*_+`'~"),
    ),
    "cseq-limit": (
        full("CSeq: 2147483647 OPTIONS"),
        OPTIONS_PEEK._replace(cseq_seq=2147483647),
    ),
    "route-token-name": (
        full("Route: Proxy One <sip:p1.example.com;lr>;x=y, <sip:p2.example.com>"),
        OPTIONS_PEEK._replace(route=b"sip:p1.example.com;lr"),
    ),
    "via-second-parm-quoted": (
        full('Via: SIP/2.0/UDP h ;branch=z9hG4bK1 , SIP/2.0/UDP h2;x="a"'),
        OPTIONS_PEEK._replace(sent_by=b"h", branch=b"z9hG4bK1"),
    ),
    # only the first line of each counts (the router does not check the others)
    "later-lines-ignored": (
        full(
            "Route: <sip:p1.example.com;lr>",
            *_BASE.values(),
            *("Call-ID: a b", "CSeq: x", "Route: x", "Via: x", "To: y"),
        ),
        OPTIONS_PEEK._replace(route=b"sip:p1.example.com;lr"),
    ),
}


@pytest.mark.parametrize("read", READS.values(), ids=READS.keys())
@pytest.mark.parametrize("name", FAST)
def test_plain_shapes_stay_fast(read: Callable[[bytes], Peek], name: str) -> None:
    data, want = FAST[name]
    assert read(data) == want
    assert not goes_to_parser(data)


def test_c_value_error_is_the_reference_reason(c_peek: CPeek) -> None:
    with pytest.raises(ValueError, match=r"^Malformed Status-Line$"):
        c_peek(b"SIP/2.0 2x0 OK\r\n\r\n")


def test_c_leaves_other_types_to_the_reference(c_peek: CPeek) -> None:
    read: Callable[[object], object] = c_peek  # type: ignore[assignment]
    assert read(bytearray(REGISTER)) is None
    assert read("REGISTER") is None


# ------------------------------------------------------------------------- equivalence

Outcome = tuple[Any, ...]


class _FullParse(Exception):
    """Raised in place of the full parse, to see whether the reference asks for one."""


def goes_to_parser(data: bytes) -> bool:
    """Whether the reference hands ``data`` to the full parser instead of reading it."""

    def stop(_: bytes) -> Peek:
        raise _FullParse

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(PEEK, "_peek_parsed", stop)
        try:
            PEEK._peek_py(data)
        except _FullParse:
            return True
        except SipError:
            return False
    return False


def reference(data: bytes) -> Outcome:
    """The pure-Python answer: the fields with their types, or the error and its reason."""
    try:
        p = PEEK._peek_py(data)
    except SipError as exc:
        return ("error", type(exc), exc.reason)
    return ("ok", *((type(v), v) for v in p))


def accelerated(c_peek: CPeek, data: bytes) -> Outcome | None:
    """The C answer in the same form; None when it hands the message to the reference."""
    try:
        fields = c_peek(data)
    except ValueError as exc:
        return ("error", BadRequest, str(exc))
    if fields is None:
        return None
    assert type(fields) is tuple and len(fields) == len(Peek._fields)
    return ("ok", *((type(v), v) for v in fields))


def assert_same(c_peek: CPeek, data: bytes) -> None:
    """The C read answers like the reference, and hands back exactly what the reference
    does not read itself."""
    got = accelerated(c_peek, data)
    assert (got is None) == (not _c_reads(data) or goes_to_parser(data))
    if got is not None:
        assert got == reference(data)


_FOLD_OR_BARE = re.compile(rb"\n[ \t]|(?<!\r)\n")


def _c_reads(data: bytes) -> bool:
    """Whether the C read may answer itself: a header block ending in CRLFCRLF, no fold,
    no bare LF (it answers unless, besides, the reference goes to the full parser)."""
    if data[:2] == b"\r\n":
        data = data.lstrip(b"\r\n")
    end = data.find(b"\r\n\r\n")
    return end >= 0 and _FOLD_OR_BARE.search(data[: end + 2]) is None


@pytest.mark.parametrize("path", CORPUS, ids=[f"{p.parent.name}/{p.name}" for p in CORPUS])
def test_corpus_same_as_reference(c_peek: CPeek, path: Path) -> None:
    assert_same(c_peek, path.read_bytes())


@FUZZ
@given(mutated())
def test_mutated_corpus_same_as_reference(c_peek: CPeek, data: bytes) -> None:
    assert_same(c_peek, data)


# Header lines built from the pieces the patterns care about, so that near-misses of each
# (missing colon, 11-digit CSeq, ';rport=1x', a '>' after the tag …) are common.
_WS = st.sampled_from(["", "", " ", "\t", " \t "])
_NAMES = st.sampled_from(
    ["Via", "v", "VIA", "Call-ID", "i", "CALL-id", "CSeq", "cseq", "To", "t", "TO", "Route",
     "Record-Route", "Max-Forwards", "vi", "tox", "Call-IDs"]
)  # fmt: skip
_PIECES = st.sampled_from(
    ["SIP", "sip", "/", "2.0", "2.1", "UDP", "tls", "TLS-SCTP", " ", "\t", "host", "h:5060",
     "[::1]:5060", ";", ",", "=", "<", ">", "branch", "Branch", "rport", "RPORT", "tag",
     "received", "z9hG4bK-.!%", "1", "5060", "12345678901", "0042", "x", "INVITE", "sip:r;lr",
     '"', "\r", "\x00", "\xff", "@", "2147483647", "2147483648", "Bob"]
)  # fmt: skip
_START = st.sampled_from(
    ["INVITE sip:a@b SIP/2.0", "SIP/2.0 200 OK", "sip/2.0 180 Ringing", "SIP/2.0 20 OK",
     "SIP/2.0  200", "INVITE  sip:a SIP/2.0", "INVITE sip:a", " sip:a SIP/2.0", "SIP/", "x",
     "SIP/2.0 200", "SIP/2.0 099 X", "SIP/2.0 700 X", "SIP/3.0 200 OK", "INVITE sip:a SIP/3.0",
     "INVITE sip:a sip/2.0", "IN@VITE sip:a SIP/2.0", "INVITE sip:a HTTP/1.1",
     "INVITE sip:\ta SIP/2.0", "INVITE sip:a SIP/2.", "INVITE sip:a SIP/12.34"]
)  # fmt: skip


@st.composite
def header_line(draw: st.DrawFn) -> str:
    head = draw(_NAMES) + draw(_WS) + ":" + draw(_WS) if draw(st.booleans()) else ""
    return head + "".join(draw(st.lists(st.one_of(_PIECES, _WS), max_size=16)))


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    lines = [draw(_START), *draw(st.lists(header_line(), max_size=10))]
    lead = draw(st.sampled_from(["", "", "\r\n", "\r\n\r\n\r", "\n"]))
    data = (lead + "\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    note(f"input: {data!r}")
    return data


@FUZZ
@given(messages())
@example(_via(";rport=1x;rport;branch=z9hG4bKa"))
@example(b"SIP/2.0 200 OK\r\nTo: <a>;tag=1>\r\nCSeq: 12345678901 X\r\nCSeq: 9999999999 Y\r\n\r\n")
def test_generated_headers_same_as_reference(c_peek: CPeek, data: bytes) -> None:
    assert_same(c_peek, data)


# ----------------------------------------------------------------------------- no crash

_ANSWERS = {"Malformed Status-Line", "Malformed Request-Line"}


@FUZZ
@given(
    st.binary(max_size=4096)
    | st.builds(operator.mul, st.binary(min_size=1, max_size=24), st.integers(1, 1 << 15))
)
@example(b"")
@example(b"\r\n" * (1 << 20))
@example(b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP " + b"a;" * (1 << 20) + b"\r\n\r\n")
@example(bytes(range(256)) * 4096)
def test_c_never_crashes(c_peek: CPeek, data: bytes) -> None:
    try:
        fields = c_peek(data)
    except ValueError as exc:
        assert str(exc) in _ANSWERS
        return
    assert fields is None or (type(fields) is tuple and len(fields) == len(Peek._fields))
    assert_same(c_peek, data)
