"""The balancer's health monitor, run as an operator runs an F5 or IPVS pool.

Run inside the balancer's namespace::

    ip netns exec sft123-lb python lbmonitor.py --log monitor.log \\
        --member m1=198.51.100.66 --member m2=198.51.100.67 --member m3=198.51.100.68

Every ``--interval`` (0.5 s) it sends each member a SIP OPTIONS to the member's own
address (``sip:<ip>:5060``, RFC 3261 §11), or with ``--probe http`` a ``GET /health``
on its admin port, and waits for the answers until the next round.  A member in
rotation leaves it on a 503 (or any answer but 200: drained, overloaded) or after
``--misses`` (2) rounds without an answer; a member out of rotation comes back
after ``--rise`` (2) answers 200 in a row.  On each change the DNAT chain ``pool``
of the nftables table is rewritten in one ``nft -f`` transaction (``numgen inc mod
N`` over the members in rotation); flows already tracked stay with their member
(conntrack), except those of a member that stopped answering (in rotation or
not: a drained member that was then stopped): its conntrack entries are
deleted, so its flows' next packets are balanced afresh over the others.  A
drained member (503) keeps its flows while it answers: work under way finishes
there.

Each change is one line in ``--log``: ``<unix time> <member> in|out <reason> pool=<m,...>``.
Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import select
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

SIP_PORT = 5060


@dataclass
class Target:
    name: str
    ip: str
    in_rotation: bool = False
    misses: int = 0
    oks: int = 0


def options(target: Target, local: tuple[str, int], seq: int) -> bytes:
    host, port = local
    branch = "z9hG4bK-mon-" + secrets.token_hex(6)
    return (
        f"OPTIONS sip:{target.ip}:{SIP_PORT} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{port};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:monitor@{host}>;tag=mon{secrets.token_hex(4)}\r\n"
        f"To: <sip:{target.ip}:{SIP_PORT}>\r\n"
        f"Call-ID: mon-{target.name}-{seq}-{secrets.token_hex(4)}\r\n"
        f"CSeq: {seq} OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def status_of(data: bytes) -> int | None:
    if not data.startswith(b"SIP/2.0 "):
        return None
    try:
        return int(data[8:11])
    except ValueError:
        return None


class Monitor:
    def __init__(self, args: argparse.Namespace):
        self.table: str = args.table
        self.interval: float = args.interval
        self.misses: int = args.misses
        self.rise: int = args.rise
        self.log = Path(args.log).open("a", buffering=1)  # noqa: SIM115 (open while it runs)
        self.targets = [Target(*m.split("=", 1)) for m in args.member]
        self.by_ip = {t.ip: t for t in self.targets}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((args.source, 0))
        self.local = self.sock.getsockname()
        self.stopping = False
        self.seq = 0
        self.kind: str = args.probe
        self.http_port: int = args.http_port
        self.pool = ThreadPoolExecutor(max_workers=len(self.targets))

    def note(self, target: Target | None, text: str) -> None:
        pool = ",".join(t.name for t in self.targets if t.in_rotation)
        who = target.name if target else "-"
        self.log.write(f"{time.time():.3f} {who} {text} pool={pool}\n")

    def apply(self) -> None:
        ips = [t.ip for t in self.targets if t.in_rotation]
        script = f"flush chain ip {self.table} pool\n"
        if len(ips) == 1:
            script += f"add rule ip {self.table} pool dnat to {ips[0]}\n"
        elif ips:
            entries = ", ".join(f"{i} : {ip}" for i, ip in enumerate(ips))
            rotation = f"numgen inc mod {len(ips)} map {{ {entries} }}"
            script += f"add rule ip {self.table} pool dnat to {rotation}\n"
        done = subprocess.run(
            ["nft", "-f", "-"], input=script, text=True, capture_output=True, check=False
        )
        if done.returncode != 0:
            self.note(None, f"nft-failed {done.stderr.strip()!r}")

    def forget_flows(self, target: Target) -> None:
        """Delete the conntrack entries of a member that stopped answering."""
        deleted = 0
        for selector in (
            ["-p", "udp", "--reply-src", target.ip],
            ["-p", "tcp", "--reply-src", target.ip],
            ["--orig-src", target.ip],
        ):
            done = subprocess.run(
                ["conntrack", "-D", *selector], capture_output=True, text=True, check=False
            )
            for line in done.stderr.splitlines():
                if "flow entries have been deleted" in line:
                    with contextlib.suppress(ValueError):
                        deleted += int(line.split()[-6])
        self.note(target, f"flows-deleted {deleted}")

    def http_health(self, target: Target) -> int | None:
        """``GET /health`` on the member's admin port: its status, None when it does not answer."""
        try:
            with socket.create_connection(
                (target.ip, self.http_port), timeout=self.interval * 0.8
            ) as sock:
                head = f"GET /health HTTP/1.1\r\nHost: {target.ip}\r\nConnection: close\r\n\r\n"
                sock.sendall(head.encode())
                data = b""
                while b"\r\n" not in data:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
        except OSError:
            return None
        if not data.startswith(b"HTTP/1.1 "):
            return None
        try:
            return int(data[9:12])
        except ValueError:
            return None

    def probe(self) -> dict[str, int]:
        """One round of probes; the status each member answered (absent: no answer)."""
        if self.kind == "http":
            deadline = time.monotonic() + self.interval
            futures = {t.ip: self.pool.submit(self.http_health, t) for t in self.targets}
            answered = {ip: f.result() for ip, f in futures.items()}
            time.sleep(max(0.0, deadline - time.monotonic()))
            return {ip: status for ip, status in answered.items() if status is not None}
        return self.sip_options()

    def sip_options(self) -> dict[str, int]:
        self.seq += 1
        for t in self.targets:
            with contextlib.suppress(OSError):
                self.sock.sendto(options(t, self.local, self.seq), (t.ip, SIP_PORT))
        answered: dict[str, int] = {}
        deadline = time.monotonic() + self.interval
        while not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                continue
            try:
                data, (ip, _port) = self.sock.recvfrom(65535)
            except OSError:
                continue  # ICMP port unreachable of an earlier probe
            status = status_of(data)
            cseq = f"CSeq: {self.seq} OPTIONS".encode()
            if ip in self.by_ip and status is not None and status >= 200 and cseq in data:
                answered[ip] = status
        return answered

    def round(self) -> None:
        answered = self.probe()
        for t in self.targets:
            status = answered.get(t.ip)
            if t.in_rotation:
                if status is None:
                    t.misses += 1
                    if t.misses >= self.misses:
                        t.in_rotation = False
                        self.apply()
                        self.note(t, f"out no-answer-{t.misses}")
                        self.forget_flows(t)
                elif status != 200:
                    t.in_rotation = False
                    self.apply()
                    self.note(t, f"out answered-{status}")
                else:
                    t.misses = 0
            else:
                # Out of rotation (drained, or already gone): a member that stops
                # answering altogether (stopped after its drain, or died while out)
                # still has flows pinned to it; they are forgotten once, so that they
                # move, as a pool's "service down: reselect" action does.
                if status is None:
                    t.misses += 1
                    if t.misses == self.misses:
                        self.note(t, f"silent-{t.misses} while out")
                        self.forget_flows(t)
                else:
                    t.misses = 0
                t.oks = t.oks + 1 if status == 200 else 0
                if t.oks >= self.rise:
                    t.in_rotation, t.misses, t.oks = True, 0, 0
                    self.apply()
                    self.note(t, "in answered-200")

    def run(self) -> None:
        self.apply()
        self.note(None, "started")
        while not self.stopping:
            self.round()
        self.note(None, "stopped")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--log", required=True)
    p.add_argument("--member", action="append", required=True, metavar="NAME=IP")
    p.add_argument("--table", default="sftlb")
    p.add_argument("--source", default="0.0.0.0", help="address the probes come from")
    p.add_argument("--interval", type=float, default=0.5)
    p.add_argument("--misses", type=int, default=2)
    p.add_argument("--rise", type=int, default=2)
    p.add_argument(
        "--probe",
        choices=("sip", "http"),
        default="sip",
        help="SIP OPTIONS to the member, or HTTP GET /health on its admin port",
    )
    p.add_argument("--http-port", type=int, default=8080)
    monitor = Monitor(p.parse_args(argv))

    def stop(*_: object) -> None:
        monitor.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    monitor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
