"""The member's overload switch (sipfarm/node.py): event-loop lag turns shedding on and off.

The Member is built, not started: no socket, so only the lag signal is read.
"""

from __future__ import annotations

from sipfarm.node import Member, MemberConfig


def test_lag_turns_shedding_on_and_a_calm_loop_turns_it_off() -> None:
    member = Member(MemberConfig(host="127.0.0.1", port=5060))
    for _ in range(3):
        member._watch_load(0.001)
    assert not member.core.overloaded
    for _ in range(10):
        member._watch_load(1.0)  # the tick ran a second late, again and again
    assert member.core.overloaded
    for _ in range(5):
        member._watch_load(0.0)
    assert member.core.overloaded  # smoothed: one calm tick is not the end of it
    for _ in range(60):
        member._watch_load(0.0)
    assert not member.core.overloaded
