"""The load every farm test runs through the VIP, and what the tests measure of it.

:class:`Load` runs, from the ``cli`` namespace, through the balancer's VIP:

- the callee ``bob``: registered first (digest) from 198.51.100.4:5070, then a SIPp
  UAS on that address (``farm_uas.xml``: fails a call whose messages name a member);
- phones registering (digest, ``farm_register.xml``) at ``reg_rate`` per second,
  one socket per registration (``-t un``), cycling over the provisioned users;
  every 200 is logged, so :meth:`LoadResult.bindings` is what was acknowledged;
- the caller (``farm_uac.xml``) at ``rate`` calls per second, one socket per call
  (``-t un``, or ``-t tn``: one TCP connection per call), ``hold_ms`` of hold; over
  TCP, four callers on four addresses share the rate (a member accepts at most 64
  connections from one source address: one caller at 100 calls/s holds some 200);

until :meth:`Load.stop`: SIPp stops placing new work and finishes what is under
way (SIGUSR1), bounded in time.  :func:`check_bindings` looks every acknowledged
binding up through the VIP and through each member given.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from farmrig import (
    LOAD_SCENARIOS,
    SCENARIOS,
    Farm,
    Lookup,
    SippProc,
    lookup,
    wait_for,
    write_csv,
)
from netns import CALLEE, CALLER, CALLERS, CLIENT, LOOKUP, SIP_PORT, VIP
from sipp import SippStats
from sippcalls import DOMAIN

#: The shared storage's accounts: the caller, the callee, and the registering phones.
ACCOUNTS = {"bob": "bob-secret", "alice": "alice-secret"} | {
    f"user{i}": f"secret-{i}" for i in range(300)
}

CALLEE_PORT = 5070
PHONE_PORT = 5999
#: The longest a load runs (a bound on SIPp's -m and -timeout; tests stop it earlier).
MAX_LOAD_S = 240
#: After a soft quit, how long calls under way get to finish.
DRAIN_S = 25.0


def phones(accounts: dict[str, str]) -> list[list[str]]:
    """The injection rows of the registering phones: ``user;domain;password;contact``."""
    users = sorted(u for u in accounts if u.startswith("user"))
    return [[u, DOMAIN, accounts[u], f"{u}@{CLIENT}:{PHONE_PORT}"] for u in users]


@dataclass
class LoadResult:
    calls: SippStats
    callee: SippStats
    registrations: SippStats
    bound: dict[str, str]  # user -> contact URI, every registration answered 200

    @property
    def figures(self) -> dict[str, object]:
        c, r = self.calls, self.registrations
        return {
            "calls started": c.created,
            "calls ok": c.successful,
            "calls failed": c.failed,
            "callee calls ok / failed": f"{self.callee.successful} / {self.callee.failed}",
            "caller retransmissions": c.retransmissions,
            "registrations started / ok / failed": f"{r.created} / {r.successful} / {r.failed}",
        }

    def failures(self) -> str:
        """SIPp's error logs (the first lines of each), for an assertion message."""
        out = []
        for name, stats in (("caller", self.calls), ("callee", self.callee),
                            ("registrations", self.registrations)):  # fmt: skip
            # the callee's wait for a late ACK ends by a timeout in most calls: no error
            # (SIPp writes some entries without a newline: cut before each timestamp)
            entries = re.split(r"(?=\d{4}-\d\d-\d\d\t)", stats.errors)
            lines = [
                line
                for entry in entries
                if "jumping to label" not in entry
                for line in entry.splitlines()
            ]
            if lines:
                out.append(f"--- {name} errors.log (first 60 lines) ---")
                out.extend(lines[:60])
        return "\n".join(out)


class Load:
    def __init__(
        self,
        farm: Farm,
        workdir: Path,
        rate: int,
        *,
        accounts: dict[str, str],
        transport: str = "un",
        hold_ms: int = 2000,
        reg_rate: int = 20,
    ):
        self.farm = farm
        self.workdir = workdir
        self.rate = rate
        self.accounts = accounts
        self.transport = transport
        self.hold_ms = hold_ms
        self.reg_rate = reg_rate
        self.started = 0.0
        workdir.mkdir(parents=True)

    def start(self) -> None:
        topo, wd, vip = self.farm.topo, self.workdir, f"{VIP}:{SIP_PORT}"
        callee = write_csv(wd / "callee.csv", [["bob", DOMAIN, self.accounts["bob"],
                                                f"bob@{CALLEE}:{CALLEE_PORT}"]])  # fmt: skip
        reg = SippProc(topo, "cli", wd / "callee-register", LOAD_SCENARIOS / "register_contact.xml",
                       CALLEE, target=vip, local_port=CALLEE_PORT, timeout=15,
                       extra=["-inf", str(callee), "-auth_uri", DOMAIN])  # fmt: skip
        registered = reg.finish()
        assert registered.successful == 1, f"bob did not register: {registered}"
        calls = self.rate * MAX_LOAD_S
        self.uas = SippProc(
            topo, "cli", wd / "uas", SCENARIOS / "farm_uas.xml", CALLEE,
            local_port=CALLEE_PORT, calls=calls, timeout=MAX_LOAD_S + 30,
        )  # fmt: skip
        self.uas.wait_bound(CALLEE, CALLEE_PORT, "cli", topo)
        phones_csv = write_csv(wd / "phones.csv", phones(self.accounts))
        self.phones = SippProc(
            topo, "cli", wd / "phones", SCENARIOS / "farm_register.xml", CLIENT, target=vip,
            transport="un", calls=self.reg_rate * MAX_LOAD_S, rate=self.reg_rate,
            timeout=MAX_LOAD_S, extra=["-inf", str(phones_csv), "-auth_uri", DOMAIN],
        )  # fmt: skip
        caller = write_csv(wd / "caller.csv", [["alice", DOMAIN, self.accounts["alice"], "bob"]])
        sources = CALLERS if self.transport == "tn" else (CALLER,)
        rate = self.rate / len(sources)
        self.callers = []
        for i, source in enumerate(sources):
            self.callers.append(SippProc(
                topo, "cli", wd / f"caller{i}", SCENARIOS / "farm_uac.xml", source, target=vip,
                transport=self.transport, calls=math.ceil(rate * MAX_LOAD_S), rate=rate,
                timeout=MAX_LOAD_S, extra=["-inf", str(caller), "-d", str(self.hold_ms)],
            ))  # fmt: skip
        self.started = time.time()

    def stop(self) -> LoadResult:
        for caller in self.callers:
            caller.quit()
        self.phones.quit()
        calls = total([caller.finish(DRAIN_S) for caller in self.callers])
        registrations = self.phones.finish(DRAIN_S)
        self.uas.quit()
        callee = self.uas.finish(5.0)
        bound: dict[str, str] = {}
        for m in re.finditer(r"bound (\S+) (\S+)", self.phones.logs()):
            bound[m.group(1)] = f"sip:{m.group(2)}"
        return LoadResult(calls, callee, registrations, bound)


def total(stats: Sequence[SippStats]) -> SippStats:
    """The statistics of several SIPp runs as one."""
    if len(stats) == 1:
        return stats[0]
    return SippStats(
        returncode=max(s.returncode for s in stats),
        created=sum(s.created for s in stats),
        successful=sum(s.successful for s in stats),
        failed=sum(s.failed for s in stats),
        retransmissions=sum(s.retransmissions for s in stats),
        errors="".join(s.errors for s in stats),
        stderr="".join(s.stderr[-1000:] for s in stats),
    )


def check_bindings(farm: Farm, bound: dict[str, str], members: Sequence[str]) -> list[Lookup]:
    """Every acknowledged binding, looked up through the VIP and at each of ``members``."""
    ns = farm.topo.ns("cli")
    out = [lookup(ns, LOOKUP, (VIP, SIP_PORT), bound)]
    for name in members:
        out.append(lookup(ns, LOOKUP, (farm.topo.members[name], SIP_PORT), bound))
    return out


def bindings_figures(lookups: Sequence[Lookup]) -> dict[str, object]:
    return {
        "registrations checked": " ".join(f"{lk.target}={lk.checked}" for lk in lookups),
        "registrations lost": " ".join(f"{lk.target}={len(lk.lost)}" for lk in lookups),
    }


def lost_lines(lookups: Sequence[Lookup]) -> str:
    return "\n".join(f"{lk.target} {line}" for lk in lookups for line in lk.lost[:20])


def start_farm(farm: Farm, names: Sequence[str], pool: Sequence[str] = ("m1", "m2", "m3")) -> None:
    """The monitor over ``pool``, members ``names`` started; return once all are in rotation."""
    farm.start_monitor(pool)
    for name in names:
        farm.start_member(name, wait=False)
    for name in names:
        farm.wait_member_ready(name)
    farm.wait_view(names)
    farm.wait_pool(names)


def victim_in_flight(farm: Farm, name: str) -> int:
    """Transactions under way on ``name`` (its ``/status``), -1 when it does not say."""
    st = farm.status(name)
    return int(st["counters"].get("transactions", 0)) if st else -1


def wait_rejoined(farm: Farm, name: str, names: Sequence[str], timeout: float = 30.0) -> float:
    """Seconds until ``name`` is back on every ring and in the balancer's rotation."""
    t0 = time.time()
    farm.wait_view(names, timeout)
    wait_for(lambda: name in farm.pool(), timeout, f"{name} back in rotation")
    return time.time() - t0


def ceil_share(x: float) -> str:
    return f"{math.ceil(x * 1000) / 10:.1f} %"
