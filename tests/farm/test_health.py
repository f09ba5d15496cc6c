"""The balancer's health probes against a farm of three (issue 5 item 6, as item 8 uses it).

A monitor sends each member a SIP OPTIONS to the member's own address
(``sip:<member ip>:5060``) and expects that member's own answer: 200 while it is
ready, 503 once it is not-ready (drained).  ``GET /health`` on the admin port says
the same.  The probe is not new work to be placed on the ring: a member that
relays it to another gives the balancer the other member's health, or a loop.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from farmload import start_farm
from farmrig import Farm, options_status, print_report

pytestmark = pytest.mark.timeout(90)

MEMBERS = ("m1", "m2", "m3")
PROBES = 10


def test_options_and_http_health_of_each_member(farm_factory: Farm, tmp_path: Path) -> None:
    farm = farm_factory
    start_farm(farm, MEMBERS)
    lb = farm.topo.ns("lb")
    ready = {
        name: [options_status(lb, farm.topo.members[name], timeout=1.0) for _ in range(PROBES)]
        for name in MEMBERS
    }
    farm.post("m2", "/not-ready")
    drained = [options_status(lb, farm.topo.members["m2"], timeout=1.0) for _ in range(PROBES)]
    http_drained = farm.health("m2")

    figures: dict[str, object] = {f"{n} ready": ready[n] for n in MEMBERS}
    figures["m2 not-ready"] = drained
    figures["m2 not-ready GET /health"] = http_drained
    print_report("health probes (SIP OPTIONS to each member's own address)", figures)
    context = farm.describe()
    assert http_drained == 503, context
    assert ready == {n: [200] * PROBES for n in MEMBERS}, context
    assert drained == [503] * PROBES, context
