"""The member core's own cost per call and per registration: no sockets, no SIPp.

    .venv/bin/python loadtest/bench_core.py [--calls 3000] [--profile calls|register]

Drives a :class:`sipfarm.core.SipCore` with literal messages (the shapes SIPp
sends) and times each step of a proxied call (INVITE, 180, 200, ACK, BYE, its
200) and of an authenticated registration (REGISTER → 401, REGISTER with
credentials → 200).  The callee's answers and the caller's credentials are made
outside the timed loops.  The cyclic collector is off while timing (a member
keeps its full passes out of the way, see sipfarm/node.py).  ``--profile`` runs
the one workload under cProfile and prints the 30 costliest functions.

What it is for: the benchmarks against Kamailio (bench_register.py, bench_calls.py)
measure the whole member with its sockets; this says what the SIP core alone
costs, so that an optimisation can be measured before it is tried under load.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "unit" / "proxy"))

from corepair import CALLER, make_core, register, wire  # noqa: E402

from mail.settings import digests  # noqa: E402
from sipfarm.actions import Send, Source  # noqa: E402
from sipfarm.auth import digest_response  # noqa: E402
from sipfarm.sip import parse  # noqa: E402

CALLEE = Source("UDP", "198.51.100.2", 5070)
REGISTRAR_PEER = Source("UDP", "198.51.100.9", 5060)


def answer(fwd: Send, code: int) -> bytes:
    """The callee's response to what the core forwarded."""
    req = parse(fwd.data)
    h = req.headers
    lines = [f"SIP/2.0 {code} X", *(f"Via: {v}" for v in h.get_all("via"))]
    lines += [f"Record-Route: {v}" for v in h.get_all("record-route")]
    lines += [f"From: {h.get('from')}", f"To: {h.get('to')};tag=b1"]
    lines += [f"Call-ID: {req.call_id}", f"CSeq: {h.get('cseq')}"]
    if code == 200 and req.method == "INVITE":
        lines.append("Contact: <sip:bob@198.51.100.2:5070>")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def invite(i: int, run: str) -> bytes:
    return wire(f"""
        INVITE sip:bob@example.com SIP/2.0
        Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK-{i}-{run}-0;rport
        Max-Forwards: 70
        From: sipp <sip:alice@example.com>;tag={i}SIPpTag{run}
        To: <sip:bob@example.com>
        Call-ID: {i}-{run}@198.51.100.1
        CSeq: 1 INVITE
        Contact: <sip:alice@198.51.100.1:5060>
        Content-Type: application/sdp

        v=0
        o=user1 53655765 2353687637 IN IP4 198.51.100.1
        s=-
        c=IN IP4 198.51.100.1
        t=0 0
        m=audio 6000 RTP/AVP 0
        a=rtpmap:0 PCMU/8000
        """)


def in_dialog(i: int, run: str, method: str, cseq: int) -> bytes:
    return wire(f"""
        {method} sip:bob@198.51.100.2:5070 SIP/2.0
        Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK-{i}-{run}-{cseq}{method};rport
        Route: <sip:192.0.2.10:5060;lr;member=m1>
        Max-Forwards: 70
        From: sipp <sip:alice@example.com>;tag={i}SIPpTag{run}
        To: <sip:bob@example.com>;tag=b1
        Call-ID: {i}-{run}@198.51.100.1
        CSeq: {cseq} {method}
        """)


def timed(
    label: str, items: list[bytes], feed: Callable[[bytes], object], out: dict[str, float]
) -> list[list[Send]]:
    """Feed ``items`` one by one; the time they took goes to ``out[label]``."""
    t = time.perf_counter()
    results = [feed(data) for data in items]
    out[label] = time.perf_counter() - t
    assert all(isinstance(r, list) for r in results), label
    return results  # type: ignore[return-value]


def calls(n: int, run: str) -> dict[str, float]:
    pair = make_core(trusted=("198.51.100.0/24",))
    register(pair, "bob", "sip:bob@198.51.100.2:5070")
    core, now = pair.core, pair.now

    def from_caller(data: bytes) -> object:
        return core.receive(data, CALLER, now)

    def from_callee(data: bytes) -> object:
        return core.receive(data, CALLEE, now)

    out: dict[str, float] = {}
    sent = timed("INVITE", [invite(i, run) for i in range(n)], from_caller, out)
    forwarded = [s[1] for s in sent]  # s[0] is the 100 Trying
    timed("180", [answer(f, 180) for f in forwarded], from_callee, out)
    timed("200", [answer(f, 200) for f in forwarded], from_callee, out)
    timed("ACK", [in_dialog(i, run, "ACK", 1) for i in range(n)], from_caller, out)
    sent = timed("BYE", [in_dialog(i, run, "BYE", 2) for i in range(n)], from_caller, out)
    timed("BYE 200", [answer(s[0], 200) for s in sent], from_callee, out)
    return out


def registrations(n: int, run: str) -> dict[str, float]:
    users = tuple(f"u{i:05d}" for i in range(n))
    pair = make_core(users=users)
    core, now = pair.core, pair.now
    ha1 = {u: digests(u, "example.com", "secret")["MD5"] for u in users}

    def request(i: int, cseq: int, auth: str = "") -> bytes:
        u = users[i]
        return wire(f"""
            REGISTER sip:example.com SIP/2.0
            Via: SIP/2.0/UDP 198.51.100.9:5060;branch=z9hG4bK-{i}-{run}-{cseq};rport
            Max-Forwards: 70
            From: <sip:{u}@example.com>;tag={i}SIPpTag{run}
            To: <sip:{u}@example.com>
            Call-ID: {i}-{run}-reg@198.51.100.9
            CSeq: {cseq} REGISTER
            Contact: <sip:{u}@198.51.100.9:5999;transport=UDP>
            Expires: 3600
            {auth}
            """)

    out: dict[str, float] = {}
    firsts = [request(i, 1) for i in range(n)]
    t = time.perf_counter()
    challenges = [core.receive(m, REGISTRAR_PEER, now) for m in firsts]
    out["REGISTER → 401"] = time.perf_counter() - t
    seconds = []
    for i, c in enumerate(challenges):
        assert isinstance(c, list)
        found = re.search(rb'nonce="([^"]+)"', c[0].data)
        assert found is not None
        nonce = found[1].decode()
        r = digest_response(
            "MD5", ha1[users[i]], nonce, "REGISTER", "sip:example.com",
            qop="auth", nc="00000001", cnonce="abc",
        )  # fmt: skip
        credentials = (
            f'Digest username="{users[i]}", realm="example.com", nonce="{nonce}", '
            f'uri="sip:example.com", response="{r}", algorithm=MD5, qop=auth, '
            'nc=00000001, cnonce="abc"'
        )
        seconds.append(request(i, 2, f"Authorization: {credentials}"))
    t = time.perf_counter()
    oks = [core.receive(m, REGISTRAR_PEER, now) for m in seconds]
    out["REGISTER → 200"] = time.perf_counter() - t
    assert all(isinstance(o, list) and o[0].data.startswith(b"SIP/2.0 200") for o in oks)
    return out


def report(title: str, times: dict[str, float], n: int) -> None:
    print(f"== {title} ({n} each, µs per message)")
    for label, seconds in times.items():
        print(f"  {label:16s} {seconds / n * 1e6:8.1f}")
    print(f"  {'total':16s} {sum(times.values()) / n * 1e6:8.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=3000, help="calls and registrations per run")
    p.add_argument("--profile", choices=["calls", "register"], help="cProfile one workload")
    args = p.parse_args()
    n = args.calls
    calls(200, "warm")
    registrations(200, "warm")
    gc.collect()
    gc.disable()
    if args.profile:
        work = calls if args.profile == "calls" else registrations
        prof = cProfile.Profile()
        prof.enable()
        work(n, "p")
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        return
    report("a proxied call", calls(n, "t"), n)
    report("an authenticated registration", registrations(n, "t"), n)


if __name__ == "__main__":
    main()
