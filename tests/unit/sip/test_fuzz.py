"""Parser and framer fuzz: input is parsed, or raises SipError, never anything else.

The inputs are arbitrary bytes and mutations of the RFC 4475 / RFC 5118 corpus
(``tests/data/``), fed to :func:`parse` whole and through :class:`StreamFramer` one byte at a
time and in random chunks. The mutators are those of ``loadtest/fuzz_parser.py``, which runs
the same invariant for millions of inputs; here Hypothesis drives them.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sipcorpus import CORPUS, MESSAGES, mutated

from sipfarm.sip import Request, Response, SipError, parse, validate_request
from sipfarm.sip.framer import StreamFramer


def _accepted(path: Path) -> bool:
    toml = tomllib.loads(path.with_suffix(".toml").read_text(encoding="utf-8"))
    return bool(toml["outcome"] == "accept")


ACCEPTED = [p for p in CORPUS if _accepted(p)]

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def answer(data: bytes) -> Request | Response | None:
    """The invariant: parsed (and a request validated), or SipError, never anything else."""
    try:
        msg = parse(data)
        if isinstance(msg, Request):
            validate_request(msg)
    except SipError as exc:
        assert 400 <= exc.status <= 699, exc
        return None
    # parse checked their syntax, so the typed views read on demand never raise
    assert all(views(msg)), msg
    return msg


def views(msg: Request | Response) -> tuple[object, ...]:
    """Every typed view of ``msg``, read (each is truthy or a tuple)."""
    return (
        msg.via,
        msg.from_,
        msg.to,
        (msg.contact,),
        (msg.route,),
        (msg.record_route,),
        msg.cseq,
        msg.call_id,
    )


Framed = tuple[list[bytes], int | None]


def frame(data: bytes, sizes: list[int]) -> Framed:
    """Feed ``data`` in chunks of ``sizes`` (the rest in one); the messages and error status."""
    framer = StreamFramer()
    out: list[bytes] = []
    pos = 0
    try:
        for size in [*sizes, len(data)]:
            out += framer.feed(data[pos : pos + size])
            pos += size
    except SipError as exc:
        assert exc.status in (400, 513), exc
        return out, exc.status
    return out, None


def bytewise(data: bytes) -> Framed:
    return frame(data, [1] * len(data))


@FUZZ
@given(st.binary(max_size=2048))
def test_parse_arbitrary_bytes(data: bytes) -> None:
    answer(data)


@FUZZ
@given(st.binary(max_size=512).map(lambda b: b"INVITE sip:a@b SIP/2.0\r\n" + b))
def test_parse_arbitrary_headers(data: bytes) -> None:
    answer(data)


@FUZZ
@given(mutated())
# Inputs the fuzzers found, kept as regressions.
@example(b"OPTIONS sip:host1 SIP/2.0\r\n\r\n")  # hostname ending in a digit
@example(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP t1\r\n\r\n")
@example(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a-1\r\n\r\n")
def test_parse_mutated_corpus(data: bytes) -> None:
    answer(data)


@FUZZ
@given(mutated(limit=4096))
def test_frame_mutated_corpus_bytewise(data: bytes) -> None:
    messages, _ = bytewise(data)
    for msg in messages:
        answer(msg)


def assert_same_framing(a: Framed, b: Framed) -> None:
    """Two chunkings of one stream frame alike; messages completed in the feed that
    failed are lost with the error, so on an error one list is a prefix of the other."""
    if a[1] is None or b[1] is None:
        assert a == b
        return
    assert a[1] == b[1]
    short, long_ = sorted((a[0], b[0]), key=len)
    assert long_[: len(short)] == short


@FUZZ
@given(
    st.lists(st.sampled_from(MESSAGES) | mutated(limit=8192), min_size=1, max_size=4),
    st.lists(st.integers(1, 200), max_size=40),
)
def test_frame_random_chunks(parts: list[bytes], sizes: list[int]) -> None:
    data = b"\r\n\r\n".join(parts)
    chunked = frame(data, sizes)
    assert_same_framing(chunked, frame(data, []))
    for msg in chunked[0]:
        answer(msg)


@pytest.mark.parametrize("path", ACCEPTED, ids=[p.name for p in ACCEPTED])
def test_frame_accepted_whole_and_bytewise(path: Path) -> None:
    """A valid message framed whole or one byte at a time gives the same messages; one whose
    Content-Length is exact (most; not inv2543 or dblreq) frames to itself."""
    data = path.read_bytes()
    stream = b"\r\n\r\n" + data + b"\r\n\r\n" + data
    whole = frame(stream, [])
    assert_same_framing(bytewise(stream), whole)
    msg = parse(data)
    if msg.content_length is not None and bytes(msg) == data:
        assert whole == ([data, data], None)
    for framed in whole[0]:
        assert answer(framed) is not None, framed


def summary(msg: Request | Response) -> tuple[Any, ...]:
    """The typed view of a message, for comparing two parses."""
    start = (msg.method, str(msg.uri)) if isinstance(msg, Request) else (msg.status, msg.reason)

    def nameaddr(na: Any) -> tuple[Any, ...]:
        return (na.display_name, str(na.uri), tuple(na.params))

    return (
        *start,
        msg.call_id,
        msg.cseq.seq,
        msg.cseq.method,
        tuple((v.transport, v.host, v.port, v.branch, tuple(v.params)) for v in msg.via),
        nameaddr(msg.from_),
        nameaddr(msg.to),
        tuple(nameaddr(c) for c in msg.contact),
        msg.contact_star,
        msg.max_forwards,
        msg.content_length,
        msg.body,
    )


def assert_round_trips(msg: Request | Response) -> None:
    """parse -> bytes -> parse is equal (STYLE.md §3), from the kept bytes and from the
    header list (``replace()`` drops the kept bytes, so every line is written again)."""
    again = parse(bytes(msg))
    assert again == msg
    assert summary(again) == summary(msg)
    rebuilt = parse(bytes(msg.replace()))
    headers = msg.headers
    if msg.content_length is None:  # written from its header list, it gains one
        headers = headers.append("Content-Length", str(len(msg.body)))
    assert rebuilt.headers == headers
    assert summary(rebuilt)[:-2] == summary(msg)[:-2]
    assert rebuilt.content_length == len(msg.body)
    assert rebuilt.body == msg.body


@pytest.mark.parametrize("path", ACCEPTED, ids=[p.name for p in ACCEPTED])
def test_round_trip_accepted(path: Path) -> None:
    msg = parse(path.read_bytes())
    assert_round_trips(msg)


@FUZZ
@given(mutated())
def test_round_trip_mutated(data: bytes) -> None:
    msg = answer(data)
    if msg is not None:
        assert_round_trips(msg)
