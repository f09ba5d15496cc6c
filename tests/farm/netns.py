"""The farm's network, built with ``ip netns``: clients, an L4 balancer, members, etcd.

Every non-loopback address is in 198.51.100.0/24 (TEST-NET-2) and lives only on
veths inside namespaces made here; the root namespace is never touched::

    cli (SIPp)  198.51.100.2-.5, .16-.19 ──veth── lb out0 198.51.100.1, VIP 198.51.100.10
                                          lb br0 198.51.100.65 (bridge)
                                            ├─veth── m1 198.51.100.66
                                            ├─veth── m2 198.51.100.67
                                            ├─veth── m3 198.51.100.68
                                            └─veth── etcd 198.51.100.70

``lb`` forwards (``ip_forward=1`` there only) and holds the nftables balancer:
DNAT of UDP and TCP 5060 on the VIP over the members in rotation (a chain the
health monitor, ``lbmonitor.py``, rewrites in one nft transaction), and SNAT of
what members originate towards the clients (source port 5060 -> VIP:5060).

Names carry a per-session prefix ``sft<pid>-``; :func:`remove_stale` removes the
namespaces of an earlier session whose process is gone (and what runs in them).

:func:`socket_in` opens a socket inside a namespace from this process (the network
namespace is per thread: a short-lived thread enters it, makes the socket and ends),
so the tests probe members, read ``/status`` and look bindings up without a helper
process.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NETNS_DIR = Path("/var/run/netns")
CLONE_NEWNET = 0x40000000
PREFIX_RE = re.compile(r"^sft(\d+)-")

OUTER_LB = "198.51.100.1"
VIP = "198.51.100.10"
CLIENT = "198.51.100.2"  # phones that register (untrusted: digest)
CALLER = "198.51.100.3"  # the caller UAC (trusted, as an SBC in front of the farm would be)
CALLEE = "198.51.100.4"  # the callee UAS (registers with digest)
LOOKUP = "198.51.100.5"  # binding lookups (trusted)
#: More callers (trusted), for TCP: a member takes at most 64 connections from one source.
CALLERS = ("198.51.100.16", "198.51.100.17", "198.51.100.18", "198.51.100.19")
INNER_LB = "198.51.100.65"
INNER_NET = "198.51.100.64/26"
MEMBER_IPS = {"m1": "198.51.100.66", "m2": "198.51.100.67", "m3": "198.51.100.68"}
ETCD_IP = "198.51.100.70"
SIP_PORT = 5060
CLUSTER_PORT = 7000
HTTP_PORT = 8080
NFT_TABLE = "sftlb"

_libc = ctypes.CDLL(None, use_errno=True)


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command (``ip``, ``nft``, ``sysctl``) and return it; raise with its stderr."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def namespace_pids(ns: str) -> list[int]:
    done = run("ip", "netns", "pids", ns, check=False)
    return [int(p) for p in done.stdout.split() if p.isdigit()]


def delete_namespace(ns: str) -> None:
    """Kill what still runs in ``ns`` (by PID) and delete it."""
    for _ in range(3):
        pids = namespace_pids(ns)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    run("ip", "netns", "del", ns, check=False)


def remove_stale() -> list[str]:
    """Delete ``sft<pid>-*`` namespaces whose creating process is gone; return their names."""
    removed = []
    for line in run("ip", "netns", "list").stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = PREFIX_RE.match(name)
        if m and not _pid_alive(int(m.group(1))):
            delete_namespace(name)
            removed.append(name)
    return removed


def _in_namespace(ns: str, make: Any) -> Any:
    """Call ``make()`` in a thread that has entered network namespace ``ns``."""
    result: list[Any] = []
    error: list[BaseException] = []

    def body() -> None:
        try:
            fd = os.open(NETNS_DIR / ns, os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {ns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            result.append(make())
        except BaseException as exc:  # handed to the caller's thread
            error.append(exc)

    # The thread ends inside the namespace: the next thread starts from the process's.
    t = threading.Thread(target=body, name=f"setns-{ns}")
    t.start()
    t.join()
    if error:
        raise error[0]
    return result[0]


def socket_in(
    ns: str, kind: int = socket.SOCK_DGRAM, bind: tuple[str, int] | None = None
) -> socket.socket:
    """A socket (UDP by default) of network namespace ``ns``, bound to ``bind`` if given."""

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET, kind)
        if bind is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(bind)
        return sock

    sock: socket.socket = _in_namespace(ns, make)
    return sock


class _NsHttp(http.client.HTTPConnection):
    def __init__(self, ns: str, host: str, port: int, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.ns = ns

    def connect(self) -> None:
        sock = socket_in(self.ns, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect((self.host, self.port))
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def http_json(
    ns: str, host: str, port: int, method: str, path: str, timeout: float = 3.0
) -> tuple[int, dict[str, Any]]:
    """An HTTP request from namespace ``ns``; the status and the JSON body."""
    conn = _NsHttp(ns, host, port, timeout)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        body = r.read()
        return r.status, json.loads(body) if body else {}
    finally:
        conn.close()


@dataclass
class Topology:
    """The namespaces, links and balancer of one session (see the module docstring)."""

    prefix: str = field(default_factory=lambda: f"sft{os.getpid()}-")
    built: list[str] = field(default_factory=list)

    def ns(self, role: str) -> str:
        """The namespace name of ``cli``, ``lb``, ``m1``..``m3`` or ``etcd``."""
        return f"{self.prefix}{role}"

    @property
    def members(self) -> dict[str, str]:
        return dict(MEMBER_IPS)

    def build(self) -> None:
        roles = ["cli", "lb", *MEMBER_IPS, "etcd"]
        try:
            for role in roles:
                ns = self.ns(role)
                run("ip", "netns", "add", ns)
                self.built.append(ns)
                run("ip", "-n", ns, "link", "set", "lo", "up")
            lb, cli = self.ns("lb"), self.ns("cli")
            # outer: cli eth0 <-> lb out0
            run("ip", "-n", lb, "link", "add", "out0", "type", "veth", "peer", "name", "eth0",
                "netns", cli)  # fmt: skip
            run("ip", "-n", lb, "addr", "add", f"{OUTER_LB}/26", "dev", "out0")
            run("ip", "-n", lb, "addr", "add", f"{VIP}/32", "dev", "out0")
            run("ip", "-n", lb, "link", "set", "out0", "up")
            for address in (CLIENT, CALLER, CALLEE, LOOKUP, *CALLERS):
                run("ip", "-n", cli, "addr", "add", f"{address}/26", "dev", "eth0")
            run("ip", "-n", cli, "link", "set", "eth0", "up")
            run("ip", "-n", cli, "route", "add", "default", "via", OUTER_LB)
            # inner: a bridge in lb, one veth per member and for etcd
            run("ip", "-n", lb, "link", "add", "br0", "type", "bridge")
            run("ip", "-n", lb, "addr", "add", f"{INNER_LB}/26", "dev", "br0")
            run("ip", "-n", lb, "link", "set", "br0", "up")
            for role, address in [*MEMBER_IPS.items(), ("etcd", ETCD_IP)]:
                port = f"v{role}"
                run("ip", "-n", lb, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                    "netns", self.ns(role))  # fmt: skip
                run("ip", "-n", lb, "link", "set", port, "master", "br0")
                run("ip", "-n", lb, "link", "set", port, "up")
                run("ip", "-n", self.ns(role), "addr", "add", f"{address}/26", "dev", "eth0")
                run("ip", "-n", self.ns(role), "link", "set", "eth0", "up")
                run("ip", "-n", self.ns(role), "route", "add", "default", "via", INNER_LB)
            run("ip", "netns", "exec", lb, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            self._balancer()
        except BaseException:
            self.remove()
            raise

    def _balancer(self) -> None:
        """The nftables table in lb: DNAT on the VIP (chain ``pool``, empty until the
        monitor fills it) and SNAT of what members originate towards the outside.

        The SNAT is Linux's usual one: the source port is kept (5060) when the
        translation is free, and another is taken when a flow to the same phone
        already holds it (a member sent while another member's flow was still
        tracked), rather than the packet being dropped."""
        rules = f"""
table ip {NFT_TABLE} {{
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr {VIP} meta l4proto {{ udp, tcp }} th dport {SIP_PORT} jump pool
    }}
    chain pool {{
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr {INNER_NET} oifname "out0" snat to {VIP}
    }}
}}
"""
        subprocess.run(
            ["ip", "netns", "exec", self.ns("lb"), "nft", "-f", "-"],
            input=rules, text=True, check=True, capture_output=True, timeout=20,
        )  # fmt: skip

    def exec_argv(self, role: str, *argv: str) -> list[str]:
        """``argv`` run inside the namespace of ``role``."""
        return ["ip", "netns", "exec", self.ns(role), *argv]

    def link(self, role: str, up: bool) -> None:
        """Take a member's (or etcd's) own veth down or up; up restores its default route."""
        ns = self.ns(role)
        run("ip", "-n", ns, "link", "set", "eth0", "up" if up else "down")
        if up:
            run("ip", "-n", ns, "route", "replace", "default", "via", INNER_LB)

    def conntrack_count(self) -> int:
        done = run("ip", "netns", "exec", self.ns("lb"), "conntrack", "-C", check=False)
        return int(done.stdout.strip() or 0)

    def flow_holder(self, host: str, port: int) -> str | None:
        """The member whose address the balancer's conntrack pairs with ``host:port`` (UDP):
        the member that holds that phone's flow, or None."""
        done = run("ip", "netns", "exec", self.ns("lb"), "conntrack", "-L", "-p", "udp",
                   "--orig-src", host, "--sport", str(port), check=False)  # fmt: skip
        by_ip = {ip: name for name, ip in MEMBER_IPS.items()}
        for line in done.stdout.splitlines():
            srcs = re.findall(r"src=(\S+)", line)
            if len(srcs) == 2 and srcs[1] in by_ip:
                return by_ip[srcs[1]]
        return None

    def pool(self) -> str:
        return run("ip", "netns", "exec", self.ns("lb"), "nft", "list", "chain", "ip",
                   NFT_TABLE, "pool").stdout  # fmt: skip

    def remove(self) -> None:
        for ns in reversed(self.built):
            delete_namespace(ns)
        self.built.clear()
