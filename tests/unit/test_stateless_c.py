"""The C answer of the common OPTIONS (``_speedups.answer_options``) against the Python core.

``StatelessCore.receive`` asks C first when the extension is built
(``stateless._answer_options``); the Python path stays the reference. For literal OPTIONS
variants, for every RFC 4475 / RFC 5118 corpus message rewritten as OPTIONS, for mutated
OPTIONS (the mutators of ``loadtest/fuzz_parser.py``) and for arbitrary bytes, C either
hands the message back (None) or returns exactly the response bytes and the address of
the Python path, and never raises. The SIPp benchmark message is answered in C.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

import sipfarm.stateless as STATELESS
from sipfarm.actions import SendResponse, Source
from sipfarm.stateless import StatelessConfig, StatelessCore

sys.path.insert(0, str(Path(__file__).resolve().parent / "sip"))
from sipcorpus import FUZZER, MESSAGES

FUZZ = settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

CORES = [
    StatelessCore(StatelessConfig(token="m7")),
    StatelessCore(
        StatelessConfig(
            token="member-3",
            allow=("INVITE", "ACK", "OPTIONS", "BYE"),
            accept=("application/sdp", "text/plain"),
            supported=("path", "outbound"),
            server="sipfarm/1",
        )
    ),
]
SOURCES = [
    Source("UDP", "192.0.2.4", 5060),
    Source("UDP", "10.0.0.9", 40000),
    Source("UDP", "127.0.0.30", 15060),
]


@pytest.fixture(scope="module")
def c_answer() -> Any:
    """The C function; skipped where the extension is not built, fails in CI."""
    if STATELESS._answer_options is None:
        if os.environ.get("CI"):
            pytest.fail("sipfarm.sip._speedups is not built in CI (install.sh builds it)")
        pytest.skip("sipfarm.sip._speedups is not built (no C compiler at install time)")
    return STATELESS._answer_options


@contextmanager
def python_only() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(STATELESS, "_answer_options", None)
        yield


def check(c_answer: Any, data: bytes, core: StatelessCore, source: Source) -> bool:
    """C gives None or the Python answer, exactly; True when C answered."""
    got = c_answer(data, source.host, source.port, core.config.token, core.options_extra)
    if got is None:
        return False
    with python_only():
        want = core.receive(data, source)
    assert isinstance(want, SendResponse), (data, want)
    assert got[0] == want.data
    assert (got[1], got[2]) == want.address
    assert type(got[2]) is int
    # and through receive(), with the counter
    before = core.counters["options"]
    action = core.receive(data, source)
    assert action == want
    assert core.counters["options"] == before + 1
    return True


def check_all(c_answer: Any, data: bytes) -> bool:
    taken = False
    for core in CORES:
        for source in SOURCES:
            taken |= check(c_answer, data, core, source)
    return taken


BASE = (
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


def variant(old: bytes, new: bytes) -> bytes:
    assert old in BASE
    return BASE.replace(old, new, 1)


VIA = b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKhjhs8ass877\r\n"
TAKEN = [
    BASE,
    variant(VIA, b"Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKa\r\n"),
    variant(VIA, b"Via: SIP/2.0/UDP 192.0.2.4:5062;branch=z9hG4bKa;rport\r\n"),
    variant(VIA, b"Via: SIP/2.0/udp 192.0.2.4:05062 ; rport ; branch = z9hG4bKa\r\n"),
    # stamped as written, as Request.with_received does (Hypothesis found `aDP`)
    variant(VIA, b"Via: SIP/2.0/aDP pc33.atlanta.com;branch=z9hG4bKa\r\n"),
    variant(VIA, b"Via: SIP/2.0/UDP pc33.atlanta.com:05060 ;branch=z9hG4bKa;rport\r\n"),
    variant(VIA, b'Via: SIP/2.0/TCP 10.0.0.9;rport;branch=z9hG4bKa;foo="x y";lr\r\n'),
    variant(VIA, b"Via: SIP/2.0/TLS 10.0.0.9;branch=z9hG4bKa\r\n"),
    variant(VIA, b"Via: SIP/2.0/WSS h.example;branch=z9hG4bKa\r\n"),
    variant(VIA, b"Via: SIP/2.0/WS h.example:0;branch=z9hG4bKa\r\n"),
    variant(VIA, b"Via: SIP/2.0/SCTP h.example;branch\r\n"),
    variant(VIA, b"Via: SIP/2.0/UDP h.example\r\n"),
    variant(VIA, b"Via: SIP/2.0/UDP h.example;RPORT;Branch=z9hG4bKq\r\n"),
    variant(VIA, b"v: SIP/2.0/UDP 10.0.0.9:40000;branch=z9hG4bKa;rport\r\n"),
    variant(
        VIA,
        b"Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKa\r\n"
        b"Via: SIP/2.0/TCP proxy.example:5070;branch=z9hG4bKb;received=1.2.3.4\r\n"
        b"VIA :   SIP/2.0/UDP x.example  \r\n",
    ),
    variant(b"To: <sip:carol@chicago.com>\r\n", b"To: <sip:carol@chicago.com>;tag=xyz\r\n"),
    variant(b"To: <sip:carol@chicago.com>\r\n", b't: "Carol C" <sip:carol@chicago.com>\r\n'),
    variant(b"To: <sip:carol@chicago.com>\r\n", b"TO:Carol <sip:carol@chicago.com>;TAG\r\n"),
    variant(b"From: Alice", b'f: "Alice A."'),
    variant(b"Call-ID: a84b4c76e66710\r\n", b"i: a84b4c76e66710@pc33.atlanta.com\r\n"),
    variant(b"CSeq: 63104 OPTIONS", b"CSeq: 0000000001  \t OPTIONS"),
    variant(b"CSeq: 63104 OPTIONS", b"CSeq: 2147483647 OPTIONS"),
    variant(b"Max-Forwards: 70\r\n", b""),
    variant(b"Max-Forwards: 70\r\n", b"Max-Forwards: 0\r\n"),
    variant(b"Max-Forwards: 70\r\n", b"Max-Forwards: 255\r\n"),
    variant(b"Content-Length: 0\r\n", b""),
    variant(b"Content-Length: 0\r\n", b"l: 00\r\n"),
    variant(b"Contact: <sip:alice@pc33.atlanta.com>\r\n", b"Contact: *\r\n"),
    variant(b"Contact: <sip:alice@pc33.atlanta.com>\r\n", b""),
    variant(
        b"Contact: <sip:alice@pc33.atlanta.com>\r\n",
        b"m: <sip:alice@pc33.atlanta.com;transport=udp>;expires=60\r\n"
        b"Route: <sip:p1.example;lr>\r\nRoute: <sip:p2.example;lr>\r\n"
        b"Record-Route: <sip:rr.example;lr>\r\nUser-Agent: x\r\nSubject: \r\n",
    ),
    variant(b"OPTIONS sip:carol@chicago.com", b"OPTIONS sips:chicago.com:5061;transport=tcp"),
]

REFUSED = [
    b"\r\n" + BASE,
    BASE + b"x",
    BASE.replace(b"\r\n", b"\n"),
    BASE.replace(b"OPTIONS sip", b"INVITE sip").replace(b"63104 OPTIONS", b"63104 INVITE"),
    BASE.replace(b"63104 OPTIONS", b"63104 INVITE"),
    BASE.replace(b"63104 OPTIONS", b"63104 options"),
    BASE.replace(b"63104", b"2147483648"),
    BASE.replace(b"SIP/2.0\r\n", b"SIP/2.1\r\n", 1),
    BASE.replace(b"sip:carol@chicago.com SIP", b"tel:+1234 SIP"),
    BASE.replace(b"sip:carol@chicago.com SIP", b"sip:carol@chicago.com?x=y SIP"),
    variant(VIA, b"Via: SIP/2.0/UDP h.example;branch=z9hG4bK\r\n"),
    variant(VIA, b"Via: SIP/2.0/UDP h.example;branch=z9hG4bKa;maddr=1.2.3.4\r\n"),
    variant(VIA, b"Via: SIP/2.0/UDP h.example;branch=z9hG4bKa;received=1.2.3.4\r\n"),
    variant(VIA, b"Via: SIP/2.0/UDP h.example;branch=z9hG4bKa;rport=5\r\n"),
    variant(VIA, b"Via: SIP/2.0/UDP h.example;branch=z9hG4bKa, SIP/2.0/UDP b.example\r\n"),
    variant(VIA, b"Via: SIP/2.0/UDP [::1];branch=z9hG4bKa\r\n"),
    variant(b"Max-Forwards: 70", b"Max-Forwards: 256"),
    variant(b"Max-Forwards: 70", b"Max-Forwards: 7a"),
    variant(b"Content-Length: 0", b"Content-Length: 1"),
    variant(b"Accept: application/sdp\r\n", b"Require: foo\r\n"),
    variant(b"Accept: application/sdp\r\n", b"Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n"),
    variant(b"Accept: application/sdp\r\n", b"Call-ID: again\r\n"),
    variant(b"Accept: application/sdp\r\n", b"Accept: a\r\nAccept: b\r\n"),
    variant(b"Accept: application/sdp\r\n", b" folded\r\n"),
    variant(b"Call-ID: a84b4c76e66710", b"Call-ID: a84b 4c76e66710"),
    variant(b"Call-ID: a84b4c76e66710", b"Call-ID:"),
    variant(b"To: <sip:carol@chicago.com>\r\n", b""),
    variant(b"Contact: <sip:alice@pc33.atlanta.com>\r\n", b"Contact: *\r\nContact: <sip:a@b>\r\n"),
    variant(b"Contact: <sip:alice@pc33.atlanta.com>", b"Contact: <sip:a@b>, <sip:c@d>"),
    variant(b"Alice", "Ålice".encode()),
]


@pytest.mark.parametrize("data", TAKEN)
def test_common_options_answered_in_c(c_answer: Any, data: bytes) -> None:
    assert check_all(c_answer, data)


@pytest.mark.parametrize("data", REFUSED)
def test_unusual_left_to_python(c_answer: Any, data: bytes) -> None:
    for source in SOURCES:
        core = CORES[0]
        assert c_answer(data, source.host, source.port, "m7", core.options_extra) is None


def test_odd_arguments(c_answer: Any) -> None:
    extra = CORES[0].options_extra
    assert c_answer(BASE, "::1", 5060, "m7", extra) is None
    assert c_answer(BASE, "", 5060, "m7", extra) is None
    assert c_answer(BASE, "1.2.3.4", -1, "m7", extra) is None
    assert c_answer(BASE, "1.2.3.4", 1 << 70, "m7", extra) is None
    assert c_answer(BASE, "1.2.3.4", 5060, "mé", extra) is None
    assert c_answer(bytearray(BASE), "1.2.3.4", 5060, "m7", extra) is None
    with pytest.raises(TypeError):
        c_answer(BASE, "1.2.3.4", 5060)


def render_sipp() -> bytes:
    path = Path(__file__).resolve().parents[2] / "loadtest" / "scenarios" / "options_uac.xml"
    text = path.read_text()
    body = text.split("<![CDATA[", 1)[1].split("]]>", 1)[0]
    lines = [line.strip() for line in body.strip("\n").splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    values = {
        "service": "service",
        "remote_ip": "127.0.0.21",
        "remote_port": "5060",
        "transport": "UDP",
        "local_ip": "127.0.0.30",
        "local_port": "15060",
        "branch": "z9hG4bK-12345-1-0",
        "pid": "12345",
        "call_number": "1",
        "call_id": "1-12345@127.0.0.30",
    }
    msg = "\r\n".join(lines) + "\r\n\r\n"
    msg = re.sub(r"\[(\w+)\]", lambda m: values[m.group(1)], msg)
    assert "[" not in msg
    return msg.encode()


def test_sipp_benchmark_message_is_answered_in_c(c_answer: Any) -> None:
    data = render_sipp()
    core = CORES[0]
    assert c_answer(data, "127.0.0.30", 15060, "m7", core.options_extra) is not None
    assert check_all(c_answer, data)


def as_options(data: bytes) -> bytes | None:
    first, sep, rest = data.partition(b"\r\n")
    if not sep or first[:4].upper() == b"SIP/" or b" " not in first:
        return None
    first = b"OPTIONS " + first.split(b" ", 1)[1]
    rest = re.sub(rb"(?im)^(cseq[ \t]*:[ \t]*[0-9]+[ \t]+)[^ \t\r\n]+", rb"\1OPTIONS", rest)
    return first + sep + rest


OPTIONS_CORPUS = [m for m in map(as_options, MESSAGES) if m is not None]
OPTIONS_BASES = [BASE, render_sipp(), *TAKEN, *OPTIONS_CORPUS]


def test_corpus_as_options(c_answer: Any) -> None:
    for data in OPTIONS_CORPUS:
        check_all(c_answer, data)
        head, sep, _ = data.partition(b"\r\n\r\n")
        if sep:
            check_all(c_answer, head + sep)
            stripped = re.sub(rb"(?im)^(content-length|l)[ \t]*:[^\r\n]*\r\n", b"", head + b"\r\n")
            check_all(c_answer, stripped + b"\r\n")


@FUZZ
@given(st.randoms(use_true_random=False))
def test_mutated_options(c_answer: Any, rng: Any) -> None:
    data: bytes = FUZZER.make_input(rng, OPTIONS_BASES)[: 1 << 16]
    note(f"input: {data!r}")
    check_all(c_answer, data)


@FUZZ
@given(st.binary(max_size=2048), st.text(max_size=20), st.integers(), st.text(max_size=10))
@example(b"", "", 0, "")
def test_arbitrary_input_never_raises(
    c_answer: Any, data: bytes, host: str, port: int, token: str
) -> None:
    c_answer(data, host, port, token, b"")
    c_answer(BASE[:40] + data, host, port, token, b"")
