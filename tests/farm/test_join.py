"""A member joining under load: only about 1/N of new work moves to it, nothing fails
(issue 5 item 8).

Two members serve; the third starts and joins (etcd view, ring, then the
balancer's rotation).  New calls are placed by Call-ID over the ring of ready
members, so after the join the newcomer owns about a third of them.  For a few
seconds after a view change (the router's hand-off of a new INVITE, 4 s) a new
call still goes to its owner under the previous view, so the share is measured
after that (and reported for the first seconds after the join too).  A call's
owner forwards its ACK (the Route names it), so each member's ``ack_forwarded``
counter (``/status``) counts the calls it owned.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from farmload import (
    ACCOUNTS,
    Load,
    bindings_figures,
    check_bindings,
    lost_lines,
    start_farm,
    wait_rejoined,
)
from farmrig import Farm, print_report

pytestmark = pytest.mark.timeout(150)

MEMBERS = ("m1", "m2", "m3")
WARMUP_S = 4.0
AFTER_S = 6.0
HANDOFF_S = 4.0  # the router's hand-off of a new INVITE to its previous owner
WORK = "ack_forwarded"  # one a call, on the call's owner


def owned(farm: Farm, names: tuple[str, ...]) -> dict[str, int]:
    out = {}
    for name in names:
        st = farm.status(name)
        out[name] = int(st["counters"].get(WORK, 0)) if st else 0
    return out


@pytest.mark.parametrize(("rate", "transport"), [(50, "un"), (100, "un"), (100, "tn")])
def test_member_joins_under_load(
    farm_factory: Farm, tmp_path: Path, rate: int, transport: str
) -> None:
    """``transport``: the caller's, one UDP socket (``un``) or TCP connection (``tn``) a call."""
    farm = farm_factory
    start_farm(farm, ("m1", "m2"), pool=MEMBERS)
    load = Load(farm, tmp_path / "load", rate, accounts=ACCOUNTS, transport=transport)
    load.start()
    time.sleep(WARMUP_S)
    before = owned(farm, ("m1", "m2"))
    farm.start_member("m3")
    joined = wait_rejoined(farm, "m3", MEMBERS)
    joined_at = time.time()
    at_join = owned(farm, MEMBERS)
    time.sleep(HANDOFF_S)
    soon = owned(farm, MEMBERS)
    time.sleep(max(0.0, joined_at + HANDOFF_S + 1.0 - time.time()))
    settled = owned(farm, MEMBERS)
    time.sleep(AFTER_S)
    after = owned(farm, MEMBERS)
    result = load.stop()
    lookups = check_bindings(farm, result.bound, MEMBERS)

    first = {n: soon[n] - at_join[n] for n in MEMBERS}
    new = {n: after[n] - settled[n] for n in MEMBERS}
    total = sum(new.values())
    share = new["m3"] / total if total else 0.0
    first_share = first["m3"] / max(1, sum(first.values()))
    print_report(
        f"m3 joins at {rate} calls/s, caller over {'TCP' if transport == 'tn' else 'UDP'}",
        {
            **result.figures,
            "calls owned before the join (m1, m2)": before,
            "seconds until m3 was on every ring and in rotation": f"{joined:.1f}",
            f"calls owned in the first {HANDOFF_S:.0f} s after the join": first,
            "share of those on m3 (hand-off window)": f"{first_share:.1%}",
            f"calls owned over {AFTER_S:.0f} s after the hand-off window": new,
            "share of those on m3": f"{share:.1%}",
            **bindings_figures(lookups),
        },
    )
    context = f"{result.failures()}\n{lost_lines(lookups)}\n{farm.describe()}"
    assert (result.calls.failed, result.calls.successful) == (0, result.calls.created), context
    assert result.callee.failed == 0, context
    assert result.registrations.failed == 0, context
    assert [lk.lost for lk in lookups] == [[] for _ in lookups], context
    assert total >= rate * AFTER_S * 0.7, f"{new}\n{context}"
    assert 0.2 <= share <= 0.47, f"m3 took {share:.1%} of new calls: {new}\n{context}"
    assert min(new["m1"], new["m2"]) / total >= 0.2, f"{new}\n{context}"
