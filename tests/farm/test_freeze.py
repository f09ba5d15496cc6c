"""A member frozen (SIGSTOP) longer than its lease, or cut off (its veth down), under
load: 0 failed calls; it learns it was dead and rejoins (issue 5 item 8).

Its etcd lease (2 s) ends while it is frozen or cut off, so the others drop it
from the ring; the balancer's monitor takes it out of rotation and deletes its
flows.  When it runs (or is linked) again it must rejoin: back on every member's
ring and in rotation, without serving stale state meanwhile.

The victim is the member that holds the callee's flow through the balancer (the
callee registered through it; the others send to the callee through it): the
hardest case.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from farmload import (
    ACCOUNTS,
    CALLEE_PORT,
    Load,
    bindings_figures,
    check_bindings,
    lost_lines,
    start_farm,
    victim_in_flight,
    wait_rejoined,
)
from farmrig import Farm, print_report
from netns import CALLEE

pytestmark = pytest.mark.timeout(150)

MEMBERS = ("m1", "m2", "m3")
WARMUP_S = 4.0
OUTAGE_S = 4.0  # longer than the member's lease (2 s)
AFTER_S = 4.0


@pytest.mark.parametrize("rate", [50, 100])
@pytest.mark.parametrize("outage", ["sigstop", "link-down"])
def test_member_outage_under_load(
    farm_factory: Farm, tmp_path: Path, rate: int, outage: str
) -> None:
    farm = farm_factory
    start_farm(farm, MEMBERS)
    load = Load(farm, tmp_path / "load", rate, accounts=ACCOUNTS)
    load.start()
    time.sleep(WARMUP_S)
    # The victim: the member that holds the callee's flow through the balancer (the
    # other members send to the callee through it), else the one with the most work.
    in_flight_all = {name: victim_in_flight(farm, name) for name in MEMBERS}
    holder = farm.topo.flow_holder(CALLEE, CALLEE_PORT)
    victim = holder or max(in_flight_all, key=lambda n: in_flight_all[n])
    in_flight = in_flight_all[victim]
    began = time.time()
    if outage == "sigstop":
        farm.signal(victim, signal.SIGSTOP)
    else:
        farm.topo.link(victim, up=False)
    try:
        left = farm.left_rotation(victim, began)
        time.sleep(max(0.0, OUTAGE_S - (time.time() - began)))
    finally:
        if outage == "sigstop":
            farm.signal(victim, signal.SIGCONT)
        else:
            farm.topo.link(victim, up=True)
    back = wait_rejoined(farm, victim, MEMBERS)
    time.sleep(AFTER_S)
    result = load.stop()
    lookups = check_bindings(farm, result.bound, MEMBERS)

    print_report(
        f"{outage} of {victim} for {OUTAGE_S:.0f} s at {rate} calls/s",
        {
            **result.figures,
            f"in flight on {victim} at the event (transactions)": in_flight,
            "the victim holds the callee's flow": holder == victim,
            "seconds until the victim left the rotation": f"{left:.2f}",
            "seconds from its return until it rejoined": f"{back:.1f}",
            **bindings_figures(lookups),
        },
    )
    context = f"{result.failures()}\n{lost_lines(lookups)}\n{farm.describe()}"
    assert farm.members[victim].process.poll() is None, context  # it lives on
    assert (result.calls.failed, result.calls.successful) == (0, result.calls.created), context
    assert result.callee.failed == 0, context
    assert result.registrations.failed == 0, context
    assert [lk.lost for lk in lookups] == [[] for _ in lookups], context
