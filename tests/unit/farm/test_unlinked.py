"""sipfarm.unlinked: what a starting member holds for peers it has not linked with yet."""

from __future__ import annotations

from cluster.frames import Emit, Relay
from sipfarm.unlinked import Unlinked

BYE = b"BYE sip:bob@198.51.100.4:5070 SIP/2.0\r\nRoute: <sip:vip;lr;member=m1>\r\n\r\n"
OK = b"SIP/2.0 200 OK\r\nCSeq: 2 BYE\r\n\r\n"


def test_frames_wait_for_their_peers_link_and_leave_in_order() -> None:
    held = Unlinked(started=100.0, wait=2.0, limit=10)
    relay = Relay(BYE, "UDP", "198.51.100.3", 35792, "m2")
    emit = Emit(OK, "UDP", "198.51.100.3", 35792)
    other: list[str] = []
    assert held.hold("m1", relay, lambda: other.append("relay"), 100.1)
    assert held.hold("m1", emit, lambda: other.append("emit"), 100.1)
    assert held.hold("m3", relay, lambda: other.append("m3"), 100.2)
    assert held.count == 3 and held
    assert list(held.due(100.3, lambda peer: False)) == []  # nobody linked yet: they wait
    up = {"m1"}
    out = [(peer, ok, frame) for peer, ok, frame, _ in held.due(100.4, up.__contains__)]
    assert out == [("m1", True, relay), ("m1", True, emit)]
    assert held.count == 1 and other == []


def test_after_the_wait_frames_go_their_other_way_and_no_more_are_held() -> None:
    held = Unlinked(started=100.0, wait=2.0, limit=10)
    relay = Relay(BYE, "UDP", "198.51.100.3", 35792, "m2")
    other: list[str] = []
    assert held.hold("m1", relay, lambda: other.append("standby"), 101.9)
    due = list(held.due(102.0, lambda peer: False))  # m1 never linked: frozen, cut off
    assert [(peer, up) for peer, up, _, _ in due] == [("m1", False)]
    due[0][3]()
    assert other == ["standby"] and not held
    assert not held.hold("m1", relay, lambda: None, 102.0)  # the start is over


def test_the_held_frames_are_bounded_and_cleared() -> None:
    held = Unlinked(started=0.0, wait=2.0, limit=2)
    relay = Relay(BYE, "UDP", "198.51.100.3", 35792, "m2")
    assert held.hold("m1", relay, lambda: None, 0.1)
    assert held.hold("m3", relay, lambda: None, 0.1)
    assert not held.hold("m1", relay, lambda: None, 0.1)  # full: the caller sends elsewhere
    held.clear()  # dead for the farm: what waited is stale
    assert held.count == 0 and list(held.due(5.0, lambda peer: True)) == []
