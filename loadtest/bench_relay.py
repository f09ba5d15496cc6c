"""One relay's CPU, apart from everything else a call costs.

    .venv/bin/python loadtest/bench_relay.py [--packets 20000] [--rate 4000] [--runs 2]

Issue 5's relay cost, taken apart.  ``sipfarm up --members 2`` on a fresh loopback
address; one UDP socket sends responses that no transaction waits for (one Via, the
farm's sent-by: the core matches no client transaction, counts a ``stray_response``
and sends nothing), at a fixed rate:

- **direct**: marked (top Via branch token) for the member the kernel gives this
  socket's flow to (SO_REUSEPORT hashes the 4-tuple; a probe burst finds which), so
  it handles them itself: a receive, a parse, a lookup;
- **relayed**: marked for the other member, so the first peeks, places and relays
  each over the cluster link (an abstract Unix socket between members of one host),
  and the second reads the frame and does what the first did in ``direct``.

Printed per phase: the CPU (utime + stime, /proc/PID/stat) of each member per packet,
and their sum; relayed minus direct is what a relay adds.  For scale, the same socket
first feeds an event loop that does nothing with what it reads (uvloop, one
``datagram_received`` that returns): what receiving alone costs a Python process on
this machine at this rate.  The packets are paced (one ``sendto`` per 1/rate s), so
most reach an idle loop, one wakeup each, as the packets of calls at a few hundred
calls per second do.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_farm
import harness

logger = logging.getLogger("bench_relay")

HZ = os.sysconf("SC_CLK_TCK")


def stray(token: str, i: int, host: str) -> bytes:
    """A 200 to an OPTIONS whose one Via names the farm and ``token``'s branch."""
    return (
        f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {host}:{harness.SIP_PORT}"
        f";branch=z9hG4bK.{token}.{i:012x}\r\n"
        f"From: <sip:a@{bench_farm.DOMAIN}>;tag=1\r\nTo: <sip:b@{bench_farm.DOMAIN}>;tag=2\r\n"
        f"Call-ID: relay-{i}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def paced(sock: socket.socket, packets: list[bytes], to: tuple[str, int], rate: int) -> float:
    """Send ``packets`` at ``rate`` per second; the seconds it took."""
    start = time.monotonic()
    for i, data in enumerate(packets):
        sock.sendto(data, to)
        delay = start + (i + 1) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return time.monotonic() - start


def _empty_receiver(host: str, port: int, ready: Any) -> None:
    import uvloop

    class Nothing(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            return None

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(Nothing, local_addr=(host, port))
        ready.set()
        await asyncio.sleep(3600)

    uvloop.run(serve())


def floor_us(packets: int, rate: int) -> float:
    """CPU per datagram of a uvloop process that reads and drops them."""
    host = bench_farm.fresh_loopback()
    ready = multiprocessing.get_context("fork").Event()
    proc = multiprocessing.get_context("fork").Process(
        target=_empty_receiver, args=(host, harness.SIP_PORT, ready), daemon=True
    )
    proc.start()
    try:
        if not ready.wait(10) or proc.pid is None:
            raise harness.ServerError("the empty receiver did not start")
        before = harness.read_proc_stat(proc.pid)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            paced(sock, [b"x" * 300] * packets, (host, harness.SIP_PORT), rate)
        time.sleep(0.3)
        after = harness.read_proc_stat(proc.pid)
        assert before is not None and after is not None
        return (after.cpu_ticks - before.cpu_ticks) / HZ * 1e6 / packets
    finally:
        proc.kill()
        proc.join(5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=20_000, help="per phase (20000)")
    parser.add_argument("--rate", type=int, default=4000, help="packets/s (4000)")
    parser.add_argument("--runs", type=int, default=2, help="direct+relayed pairs (2)")
    args = parser.parse_args(argv)
    if not 1000 <= args.packets <= 1_000_000 or not 100 <= args.rate <= 50_000:
        parser.error("--packets in [1000, 1000000], --rate in [100, 50000]")
    if not 1 <= args.runs <= 10:
        parser.error("--runs in [1, 10]")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    floor = floor_us(args.packets, args.rate)
    rows = []
    with tempfile.TemporaryDirectory(prefix="sipfarm-bench-relay-") as tmp:
        workdir = Path(tmp)
        accounts = bench_farm.provision(workdir / "accounts", 10)
        with (
            bench_farm.one_host_farm(accounts, workdir, 2) as server,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
        ):
            sock.bind((server.host, 0))  # loopback to loopback, one flow
            to = (server.host, server.port)
            before = {m.token: m.counters().get("received", 0) for m in server.members}
            paced(sock, [stray("nobody", i, server.host) for i in range(50)], to, 1000)
            time.sleep(0.5)
            got = {
                m.token: m.counters().get("received", 0) - before[m.token] for m in server.members
            }
            lander = max(server.members, key=lambda m: got[m.token])
            other = next(m for m in server.members if m is not lander)
            logger.info("this socket's flow lands on %s (%s)", lander.token, got)
            for run in range(1, args.runs + 1):
                for phase, token in (("direct", lander.token), ("relayed", other.token)):
                    packets = [stray(token, i, server.host) for i in range(args.packets)]
                    cpu = {m.token: m.cpu_ticks() for m in server.members}
                    relayed = lander.counters().get("relayed_out", 0)
                    took = paced(sock, packets, to, args.rate)
                    time.sleep(0.5)
                    us = {
                        m.token: (m.cpu_ticks() - cpu[m.token]) / HZ * 1e6 / args.packets
                        for m in server.members
                    }
                    relays = lander.counters().get("relayed_out", 0) - relayed
                    rows.append((run, phase, us[lander.token], us[other.token], relays, took))
    print(f"== one relay's CPU: stray responses at {args.rate}/s, {args.packets} a phase, "
          f"sipfarm up --members 2 ({os.cpu_count()} CPUs)")  # fmt: skip
    print(f"   an empty uvloop receiver: {floor:.1f} us a datagram (receiving alone)")
    print(f"{'run':>3} {'phase':>8} {'lander us':>9} {'other us':>8} {'sum us':>7} "
          f"{'relayed':>8} {'seconds':>7}")  # fmt: skip
    for run, phase, a, b, relays, took in rows:
        print(f"{run:>3} {phase:>8} {a:>9.1f} {b:>8.1f} {a + b:>7.1f} {relays:>8} {took:>7.1f}")
    direct = [a + b for _, phase, a, b, _, _ in rows if phase == "direct"]
    relayed = [a + b for _, phase, a, b, _, _ in rows if phase == "relayed"]
    added = sum(relayed) / len(relayed) - sum(direct) / len(direct)
    print(f"   a relay adds {added:.1f} us of CPU to a packet's {sum(direct) / len(direct):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
