"""sipfarm/flows.py: which member holds a phone's flow."""

from __future__ import annotations

from sipfarm.actions import Source
from sipfarm.flows import Flows

PHONE = Source("UDP", "198.51.100.7", 5062)


def test_a_relayed_flow_is_held_by_the_member_that_received_it() -> None:
    flows = Flows("m1")
    assert flows.holder(PHONE) is None
    flows.held_by(PHONE, "m2")
    # a Send's (transport, host, port) finds what a Source recorded
    assert flows.holder(("UDP", "198.51.100.7", 5062)) == "m2"
    assert flows.holder(("TCP", "198.51.100.7", 5062)) is None


def test_a_flow_received_here_is_ours_again() -> None:
    flows = Flows("m1")
    flows.held_by(PHONE, "m2")
    flows.mine(PHONE)
    assert flows.holder(PHONE) == "m1"
    flows.clear()  # m1 was dead for the farm: the balancer forgot its flows
    assert flows.holder(PHONE) is None


def test_the_table_forgets_the_oldest_generation() -> None:
    flows = Flows("m1", limit=3)
    for port in range(7):
        flows.held_by(("UDP", "198.51.100.7", port), "m2")
    assert len(flows) <= 6
    assert flows.holder(("UDP", "198.51.100.7", 6)) == "m2"
    assert flows.holder(("UDP", "198.51.100.7", 0)) is None


def test_a_member_that_left_holds_nothing() -> None:
    flows = Flows("m1", limit=2)
    flows.held_by(PHONE, "m2")
    flows.held_by(("UDP", "198.51.100.8", 5060), "m3")
    flows.held_by(("UDP", "198.51.100.9", 5060), "m2")
    assert flows.drop("m2") == 2
    assert flows.holder(PHONE) is None
    assert flows.holder(("UDP", "198.51.100.8", 5060)) == "m3"
