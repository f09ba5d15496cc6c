"""cluster/membership.py: views applied in revision order, states, ring and controller."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.membership import (
    Deleted,
    MemberInfo,
    MemberState,
    Put,
    View,
    apply,
    decode_member,
    encode_member,
)

S = MemberState


def member(
    token: str,
    state: MemberState = S.READY,
    created: int = 1,
    roles: tuple[str, ...] = ("frontend", "backend"),
) -> MemberInfo:
    return MemberInfo(token, ("198.51.100.10", 7000), frozenset(roles), state, created)


def test_join_ready_drain_leave() -> None:
    v = View()
    v = apply(v, Put(10, member("m1", S.JOINING, 10)))
    assert v.live == {"m1"} and v.ready == set() and v.revision == 10
    v = apply(v, Put(11, member("m1", S.READY, 10)))
    assert v.ready == {"m1"} and v.ring().owner("k") == "m1"
    v = apply(v, Put(12, member("m2", S.READY, 12)))
    v = apply(v, Put(13, member("m1", S.NOT_READY, 10)))  # draining: live, no new work
    assert v.live == {"m1", "m2"} and v.ready == {"m2"}
    v = apply(v, Put(14, member("m1", S.GONE, 10)))
    assert v.live == {"m2"} and v.dead == set()
    v = apply(v, Deleted(15, "m1"))  # its key removed afterwards: nothing more happens
    assert v.live == {"m2"} and v.dead == set()


def test_a_lease_that_ends_is_a_dead_member() -> None:
    v = apply(apply(View(), Put(5, member("m1", created=5))), Put(6, member("m2", created=6)))
    v = apply(v, Deleted(9, "m1"))
    assert v.dead == {"m1"} and v.live == {"m2"} and v.ready == {"m2"}


def test_old_events_do_not_take_the_view_back() -> None:
    v = apply(View(), Put(20, member("m1", S.NOT_READY)))
    assert apply(v, Put(19, member("m1", S.READY))) is v
    assert apply(v, Deleted(20, "m1")) is v


def test_controller_is_the_first_backend_to_join_and_the_backup_the_next() -> None:
    v = View()
    v = apply(v, Put(3, member("m3", created=3)))
    v = apply(v, Put(4, member("f1", created=1, roles=("frontend",))))
    v = apply(v, Put(5, member("m5", created=5)))
    v = apply(v, Put(6, member("m6", created=6)))
    assert (v.controller, v.backup) == ("m3", "m5")
    v = apply(v, Deleted(7, "m3"))  # the controller's lease ends: control passes on
    assert (v.controller, v.backup) == ("m5", "m6")


def test_member_values_round_trip_and_bad_ones_are_refused() -> None:
    m = member("m1", S.NOT_READY, 42)
    assert decode_member("m1", encode_member(m), 42) == m
    for bad in (
        None,
        {"address": ["h"], "roles": ["backend"], "state": "ready"},
        {"address": ["h", 70000], "roles": ["backend"], "state": "ready"},
        {"address": ["h", 7000], "roles": ["mail"], "state": "ready"},
        {"address": ["h", 7000], "roles": ["backend"], "state": "sleeping"},
    ):
        with pytest.raises(ValueError):
            decode_member("m1", bad, 1)


EVENTS = st.lists(
    st.one_of(
        st.builds(
            lambda r, t, s: Put(r, member(t, s, created=r)),
            st.integers(1, 60),
            st.sampled_from(["m1", "m2", "m3"]),
            st.sampled_from(list(S)),
        ),
        st.builds(Deleted, st.integers(1, 60), st.sampled_from(["m1", "m2", "m3"])),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(EVENTS)
def test_any_event_stream_keeps_the_view_consistent(events: list) -> None:  # type: ignore[type-arg]
    v = View()
    for e in events:
        before = v.revision
        v = apply(v, e)
        assert v.revision >= before
        assert v.ready <= v.live <= set(v.members)
        assert set(v.ring().members) == v.ready
        assert v.controller is None or v.controller in v.live
        assert v.controller != v.backup or v.controller is None
