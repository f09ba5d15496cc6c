"""kill -9 of a member under load: 0 failed calls, 0 registrations lost (issue 5 item 8).

A call whose INVITE was on the dead member is completed by a survivor on the
caller's retransmission; established calls of the dead member finish through a
survivor (loose routing needs no transaction state); every binding that got a 200
is found afterwards through the VIP and at each survivor.

The caller is on UDP (one socket a call).  Over TCP, a new connection that the
balancer sends to the dead member before its monitor notices (about 1.3 s) is
refused, and SIPp 3.6.1 ends the whole run on that; TCP callers are in
test_join.py.
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
)
from farmrig import Farm, print_report
from netns import CALLEE

pytestmark = pytest.mark.timeout(150)

MEMBERS = ("m1", "m2", "m3")
WARMUP_S = 4.0
AFTER_S = 6.0


@pytest.mark.parametrize("rate", [50, 100])
def test_kill_9_under_load(farm_factory: Farm, tmp_path: Path, rate: int) -> None:
    farm = farm_factory
    start_farm(farm, MEMBERS)
    load = Load(farm, tmp_path / "load", rate, accounts=ACCOUNTS)
    load.start()
    time.sleep(WARMUP_S)
    # The victim: the member that holds the callee's flow through the balancer (the
    # others send to the callee through it), else the one with the most work.
    in_flight = {name: victim_in_flight(farm, name) for name in MEMBERS}
    holder = farm.topo.flow_holder(CALLEE, CALLEE_PORT)
    victim = holder or max(in_flight, key=lambda n: in_flight[n])
    killed = time.time()
    farm.signal(victim, signal.SIGKILL)
    left = farm.left_rotation(victim, killed)
    time.sleep(AFTER_S)
    result = load.stop()
    survivors = [n for n in MEMBERS if n != victim]
    lookups = check_bindings(farm, result.bound, survivors)

    print_report(
        f"kill -9 {victim} at {rate} calls/s",
        {
            **result.figures,
            f"in flight on {victim} at the kill (transactions)": in_flight[victim],
            "transactions on each member at the kill": in_flight,
            "the victim holds the callee's flow": holder == victim,
            "seconds until the victim left the rotation": f"{left:.2f}",
            **bindings_figures(lookups),
        },
    )
    context = f"{result.failures()}\n{lost_lines(lookups)}\n{farm.describe()}"
    assert result.calls.created >= rate * (WARMUP_S + AFTER_S) * 0.8, context
    assert (result.calls.failed, result.calls.successful) == (0, result.calls.created), context
    assert result.callee.failed == 0, context
    assert result.registrations.failed == 0, context
    assert result.bound, context
    assert [lk.lost for lk in lookups] == [[] for _ in lookups], context
