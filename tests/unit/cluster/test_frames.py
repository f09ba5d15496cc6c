"""cluster/frames.py: frames round-trip, arrive in any chunks, and garbage is a FrameError."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.frames import (
    PROTOCOL_VERSIONS,
    Emit,
    FrameError,
    FrameReader,
    Hello,
    Ping,
    Relay,
    Request,
    Response,
    common_version,
    encode,
)

INVITE = b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bK1\r\n"

FRAMES = st.one_of(
    st.builds(Hello, st.text(max_size=16), st.lists(st.integers(0, 9), max_size=4).map(tuple)),
    st.builds(
        Relay,
        st.binary(max_size=2000),
        st.sampled_from(["UDP", "TCP"]),
        st.sampled_from(["198.51.100.1", "2001:db8::1"]),
        st.integers(0, 65535),
        st.text(max_size=8),
        st.integers(0, 3),
    ),
    st.builds(
        Emit,
        st.binary(max_size=2000),
        st.sampled_from(["UDP", "TCP"]),
        st.sampled_from(["198.51.100.1", "2001:db8::1"]),
        st.integers(0, 65535),
    ),
    st.builds(
        Request,
        st.integers(0, 2**40),
        st.sampled_from(["lookup", "save"]),
        st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=4),
    ),
    st.builds(Response, st.integers(0, 2**40), st.text(max_size=20), st.none()),
    st.builds(Ping),
)


def normal(frame: object) -> object:
    return frame._replace(versions=list(frame.versions)) if isinstance(frame, Hello) else frame


def test_a_relay_keeps_the_packet_and_where_it_came_from() -> None:
    frame = Relay(INVITE, "TCP", "198.51.100.1", 40123, "a1b2c3", hops=1)
    (got,) = FrameReader().feed(encode(frame))
    assert got == frame and got.data == INVITE


@settings(max_examples=200, deadline=None)
@given(st.lists(FRAMES, min_size=1, max_size=8), st.integers(1, 50))
def test_frames_round_trip_in_any_chunks(frames: list, chunk: int) -> None:  # type: ignore[type-arg]
    stream = b"".join(encode(f) for f in frames)
    reader = FrameReader()
    got = []
    for i in range(0, len(stream), chunk):
        got += reader.feed(stream[i : i + chunk])
    assert [normal(g) for g in got] == [normal(f) for f in frames]


@pytest.mark.parametrize(
    "data",
    [
        msgpack.packb({"not": "a frame"}),
        msgpack.packb([9, "x"]),
        msgpack.packb([1, b"x", "UDP"]),  # a Relay missing fields
        msgpack.packb([1, b"x", "SCTP", "h", 1, "t", 1]),  # unknown transport
        msgpack.packb([1, b"x", "UDP", "h", 70000, "t", 1]),  # port out of range
        msgpack.packb([0, "t", ["1"]]),  # versions not integers
        b"\xc1",  # never used in msgpack
    ],
)
def test_what_is_not_a_frame_is_refused(data: bytes) -> None:
    with pytest.raises(FrameError):
        FrameReader().feed(data)


def test_a_frame_larger_than_the_limit_is_refused() -> None:
    reader = FrameReader(max_frame=1024)
    with pytest.raises(FrameError):
        reader.feed(encode(Relay(b"x" * 5000, "UDP", "198.51.100.1", 5060, "a1")))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_is_a_frame_error_or_frames_never_anything_else(data: bytes) -> None:
    try:
        frames = FrameReader().feed(data)
    except FrameError:
        return
    assert all(isinstance(f, Hello | Relay | Request | Response | Emit | Ping) for f in frames)


def test_versions_meet_on_the_newest_both_speak() -> None:
    assert common_version((1, 2), (2, 3)) == 2
    assert common_version((1,), (2,)) is None
    assert common_version(PROTOCOL_VERSIONS, PROTOCOL_VERSIONS) == max(PROTOCOL_VERSIONS)
    # a member of the previous release (version 1 only) still links with this one
    assert common_version(PROTOCOL_VERSIONS, (1,)) == 1


def test_a_ping_is_one_small_frame() -> None:
    assert FrameReader().feed(encode(Ping()) * 3) == [Ping(), Ping(), Ping()]
    assert len(encode(Ping())) == 2
