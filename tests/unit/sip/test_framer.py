"""StreamFramer: SIP messages cut out of a byte stream by Content-Length (RFC 3261 §18.3)."""

from __future__ import annotations

import random

import pytest

from sipfarm.sip.errors import BadRequest, MessageTooLarge, SipError
from sipfarm.sip.framer import StreamFramer

BODY = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n\r\nc=IN IP4 192.0.2.1\r\n"


def message(n: int = 1, body: bytes = BODY, length: str | None = None) -> bytes:
    """An INVITE with ``body``; ``length`` replaces the whole Content-Length line."""
    cl = f"Content-Length: {len(body)}" if length is None else length
    return (
        f"INVITE sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK{n}\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:alice@example.com>;tag={n}\r\n"
        f"To: <sip:bob@example.com>\r\n"
        f"Call-ID: {n}@192.0.2.1\r\n"
        f"CSeq: {n} INVITE\r\n"
        f"Content-Type: application/sdp\r\n"
        f"{cl}\r\n"
        f"\r\n"
    ).encode() + body


def feed_in_chunks(framer: StreamFramer, data: bytes, sizes: list[int]) -> list[bytes]:
    out: list[bytes] = []
    pos = 0
    for size in sizes:
        out += framer.feed(data[pos : pos + size])
        pos += size
    out += framer.feed(data[pos:])
    return out


def test_whole_message() -> None:
    framer = StreamFramer()
    msg = message()
    got = framer.feed(msg)
    assert got == [msg]
    assert all(type(m) is bytes for m in got)
    assert framer.buffered == 0


def test_body_may_contain_an_empty_line() -> None:
    """Only Content-Length delimits the body; its own CRLFCRLF is data."""
    framer = StreamFramer()
    assert framer.feed(message() + message(2)) == [message(), message(2)]


def test_byte_at_a_time() -> None:
    framer = StreamFramer()
    stream = message(1) + message(2, body=b"")
    got: list[bytes] = []
    for i in range(len(stream)):
        got += framer.feed(stream[i : i + 1])
    assert got == [message(1), message(2, body=b"")]
    assert framer.buffered == 0


def test_many_messages_in_one_chunk() -> None:
    framer = StreamFramer()
    msgs = [message(i, body=BODY * (i % 4)) for i in range(500)]
    assert framer.feed(b"".join(msgs)) == msgs


@pytest.mark.parametrize("seed", range(20))
def test_random_chunking(seed: int) -> None:
    rng = random.Random(seed)
    msgs = [message(i, body=BODY[: rng.randrange(len(BODY))]) for i in range(30)]
    stream = b"".join(msgs)
    sizes = [rng.choice((1, 2, 3, 7, 64, 500)) for _ in range(len(stream) // 20)]
    assert feed_in_chunks(StreamFramer(), stream, sizes) == msgs


def test_partial_message_waits() -> None:
    framer = StreamFramer()
    msg = message()
    assert framer.feed(msg[:-5]) == []
    assert framer.buffered == len(msg) - 5
    assert framer.feed(msg[-5:]) == [msg]


@pytest.mark.parametrize(
    "line",
    [
        f"Content-Length: {len(BODY)}",
        f"content-length: {len(BODY)}",
        f"CONTENT-LENGTH:{len(BODY)}",
        f"l: {len(BODY)}",
        f"L:{len(BODY)}",
        f"Content-Length   : {len(BODY)}",
        f"l \t: \t{len(BODY)} \t",
        f"Content-Length:\r\n  {len(BODY)}",
        f"Content-Length: 0000{len(BODY)}",
    ],
    ids=[
        "canonical",
        "lower",
        "upper",
        "compact",
        "compact-upper",
        "sp-before-colon",
        "tabs",
        "folded",
        "leading-zeros",
    ],
)
def test_content_length_spellings(line: str) -> None:
    """Compact form, any case, SP/HTAB before the colon, folded value (RFC 3261 §7.3)."""
    msg = message(length=line)
    assert StreamFramer().feed(msg + msg) == [msg, msg]


def test_lookalike_headers_are_not_content_length() -> None:
    msg = message(length=f"X-Content-Length: 99\r\nContent-Length-X: 7\r\nl: {len(BODY)}")
    assert StreamFramer().feed(msg) == [msg]


def test_pings_between_messages() -> None:
    """CRLFCRLF is a keep-alive ping (RFC 5626 §3.5.1); a single CRLF is stray, skipped."""
    framer = StreamFramer()
    got = framer.feed(b"\r\n\r\n" + message(1) + b"\r\n\r\n\r\n\r\n" + message(2) + b"\r\n")
    assert got == [message(1), message(2)]
    assert framer.pings_received == 3
    assert framer.feed(b"\r\n") == []
    assert framer.pings_received == 4
    assert framer.buffered == 0


def test_ping_split_across_feeds() -> None:
    framer = StreamFramer()
    for piece in (b"\r", b"\n", b"\r", b"\n"):
        assert framer.feed(piece) == []
    assert framer.pings_received == 1
    assert framer.buffered == 0


def test_stray_crlf_before_a_message_is_not_a_ping() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n" + message()) == [message()]
    assert framer.feed(b"\r\n" + message(2)) == [message(2)]
    assert framer.pings_received == 0


def test_pings_only() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n" * 1000) == []
    assert framer.pings_received == 1000
    assert framer.buffered == 0


def raises(framer: StreamFramer, data: bytes, kind: type[SipError], reason: str) -> None:
    with pytest.raises(kind) as info:
        framer.feed(data)
    assert info.value.reason == reason


def test_missing_content_length() -> None:
    """Content-Length is mandatory on a stream (RFC 3261 §18.3)."""
    msg = message().replace(f"Content-Length: {len(BODY)}\r\n".encode(), b"")
    raises(StreamFramer(), msg, BadRequest, "Missing Content-Length")


@pytest.mark.parametrize("value", ["-1", "abc", "", "1 2", "0x10", "+5", "1.0", "١٢"])
def test_bad_content_length(value: str) -> None:
    framer = StreamFramer()
    with pytest.raises(BadRequest) as info:
        framer.feed(message(length=f"Content-Length: {value}"))
    assert info.value.status == 400
    assert info.value.reason == "Bad Content-Length"


def test_multiple_content_length() -> None:
    """Ambiguous framing (RFC 4475 §3.3.9): the stream cannot be trusted."""
    msg = message(length=f"Content-Length: {len(BODY)}\r\nl: 5")
    raises(StreamFramer(), msg, BadRequest, "Multiple Content-Length")


def test_header_too_large_without_end() -> None:
    framer = StreamFramer(max_header_size=1024)
    assert framer.feed(b"INVITE sip:a@b SIP/2.0\r\n") == []
    with pytest.raises(MessageTooLarge) as info:
        framer.feed(b"X-Junk: " + b"a" * 1024)
    assert info.value.status == 513


def test_header_too_large_with_end() -> None:
    msg = message()
    header = msg.index(b"\r\n\r\n") + 4
    assert StreamFramer(max_header_size=header).feed(msg) == [msg]
    with pytest.raises(MessageTooLarge):
        StreamFramer(max_header_size=header - 1).feed(msg)


def test_message_too_large_before_the_body() -> None:
    """The size is refused as soon as the header is read, before any body is buffered."""
    msg = message(length="Content-Length: 70000")
    header = msg[: msg.index(b"\r\n\r\n") + 4]
    with pytest.raises(MessageTooLarge) as info:
        StreamFramer().feed(header)
    assert info.value.status == 513
    with pytest.raises(MessageTooLarge):
        StreamFramer().feed(message(length="Content-Length: 99999999999999999999999"))


def test_message_of_exactly_the_maximum_size() -> None:
    msg = message()
    assert StreamFramer(max_message_size=len(msg)).feed(msg) == [msg]
    with pytest.raises(MessageTooLarge):
        StreamFramer(max_message_size=len(msg) - 1).feed(msg)


def test_broken_framer_keeps_raising() -> None:
    """After a framing error the stream is desynchronised: every later feed raises."""
    framer = StreamFramer()
    good = message()
    with pytest.raises(BadRequest):
        framer.feed(good + message(length="Content-Length: x"))
    assert framer.buffered == 0
    for data in (good, b"", b"\r\n\r\n"):
        with pytest.raises(BadRequest) as info:
            framer.feed(data)
        assert info.value.reason == "Bad Content-Length"


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        StreamFramer(max_message_size=0)
