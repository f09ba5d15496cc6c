"""The account store at scale: provisioning rate to 1,000,000 accounts, and a farm that
serves registrations within seconds of its start on that tree (issue 6, "What it must
reach").

    .venv/bin/python loadtest/bench_store.py [--accounts 1000000] [--batch 50000]
                                             [--foldering 1/1] [--members 2] [--dir DIR]
                                             [--keep]

1. **Provisioning**: ``--accounts`` accounts in one domain (``--foldering``: the
   domain's account-level foldering, the seed's advice for large domains), written by
   :meth:`mail.store.AccountStore.add_accounts` (what ``sipfarm account import`` runs)
   in batches of ``--batch``; the rate of each batch and the whole, so that a slope
   (a directory growing too large) shows.  Names are 10 hexadecimal characters of a
   hash of the index, so the first letters spread over the folders as real names do.
2. **Start**: ``sipfarm up --members N`` on a fresh loopback address on that tree; the
   time from the start to the first ``200 OK`` to an authenticated REGISTER (a small
   SIP client here: REGISTER, 401, REGISTER with the digest, 200), for accounts drawn
   at random: the farm must not scan the tree at start (target: within 10 s).
3. **Registrations at random** over the whole tree once it serves: ``--probes``
   accounts, one after the other, and their latency percentiles (each REGISTER lands
   on one of the members; half of them are relayed to their AOR's owner).

Prints a table to stdout and writes loadtest/results/store-<timestamp>.json.  The
tree goes to ``--dir`` (default a fresh directory under /tmp: some 4 GiB for a
million accounts) and is removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

from mail.foldering import Method
from mail.settings import ha1
from mail.store import AccountStore
from sipfarm.auth.digest import digest_response

DOMAIN = "store.example"
#: The issue's target: the farm serves registrations within this long of its start.
START_TARGET_S = 10.0


def user_name(i: int) -> str:
    return hashlib.sha1(str(i).encode()).hexdigest()[:10]


def password(i: int) -> str:
    return f"pw-{i}"


def provision(data: Path, count: int, batch: int, foldering: Method) -> list[tuple[int, float]]:
    """Add ``count`` accounts in batches; (accounts so far, seconds of that batch)."""
    store = AccountStore(data)
    store.add_domain(DOMAIN, account_foldering=foldering)
    out = []
    for start in range(0, count, batch):
        rows = [
            (user_name(i), DOMAIN, password(i)) for i in range(start, min(count, start + batch))
        ]
        began = time.monotonic()
        store.add_accounts(rows)
        seconds = time.monotonic() - began
        out.append((start + len(rows), seconds))
        print(
            f"{time.strftime('%H:%M:%S')} provisioned {start + len(rows)}: "
            f"{len(rows) / seconds:.0f} accounts/s",
            file=sys.stderr,
            flush=True,
        )
    return out


class Phone:
    """One UDP socket that registers accounts with digest (RFC 3261 §22.4, qop=auth)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.local = self.sock.getsockname()

    def close(self) -> None:
        self.sock.close()

    def _request(self, user: str, cseq: int, call_id: str, auth: str | None) -> bytes:
        host, port = self.local
        lines = [
            f"REGISTER sip:{DOMAIN} SIP/2.0",
            f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{secrets.token_hex(8)};rport",
            "Max-Forwards: 70",
            f"From: <sip:{user}@{DOMAIN}>;tag={secrets.token_hex(4)}",
            f"To: <sip:{user}@{DOMAIN}>",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} REGISTER",
            f"Contact: <sip:{user}@{host}:{port}>",
            "Expires: 300",
        ]
        if auth:
            lines.append(auth)
        return ("\r\n".join([*lines, "Content-Length: 0", "", ""])).encode()

    def _exchange(self, data: bytes, timeout: float) -> bytes | None:
        self.sock.settimeout(timeout)
        self.sock.sendto(data, self.target)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                answer = self.sock.recv(65536)
            except (TimeoutError, ConnectionRefusedError):
                return None
            if not answer.startswith(b"SIP/2.0 100 "):
                return answer

    def register(self, i: int, timeout: float = 2.0) -> int | None:
        """The final status of REGISTER (after the digest round), or None on no answer."""
        user, call_id = user_name(i), secrets.token_hex(8)
        first = self._exchange(self._request(user, 1, call_id, None), timeout)
        if first is None or not first.startswith(b"SIP/2.0 401 "):
            return None if first is None else int(first.split(b" ", 2)[1])
        text = first.decode("utf-8", "replace")
        found = re.search(r"WWW-Authenticate: Digest ([^\r\n]*)", text, re.IGNORECASE)
        if found is None:
            return 401
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', found.group(1)))
        algorithm = params.get("algorithm", "MD5")
        uri = f"sip:{DOMAIN}"
        cnonce = secrets.token_hex(4)
        response = digest_response(
            algorithm,
            ha1(algorithm, user, params["realm"], password(i)),
            params["nonce"],
            "REGISTER",
            uri,
            qop="auth",
            nc="00000001",
            cnonce=cnonce,
        )
        auth = (
            f'Authorization: Digest username="{user}", realm="{params["realm"]}", '
            f'nonce="{params["nonce"]}", uri="{uri}", response="{response}", '
            f'algorithm={algorithm}, qop=auth, nc=00000001, cnonce="{cnonce}"'
        )
        second = self._exchange(self._request(user, 2, call_id, auth), timeout)
        return None if second is None else int(second.split(b" ", 2)[1])


def start_farm(data: Path, members: int, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    host = "127.0.0.1"
    for _ in range(100):
        a, b, c = 192 + secrets.randbelow(32), secrets.randbelow(256), 1 + secrets.randbelow(254)
        host = f"127.{a}.{b}.{c}"
        if harness.port_is_free(host, harness.SIP_PORT):
            break
    argv = [str(harness.SIPFARM), "up", "--sip", f"{host}:{harness.SIP_PORT}",
            "--members", str(members), "--data", str(data)]  # fmt: skip
    log = open(workdir / "farm.log", "wb")  # noqa: SIM115 (kept open for the process)
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    return process, host


def stop_farm(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--accounts", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=50_000)
    p.add_argument("--foldering", type=Method.parse, default=Method.parse("1/1"))
    p.add_argument("--members", type=int, default=2)
    p.add_argument("--probes", type=int, default=500, help="registrations at random (500)")
    p.add_argument("--dir", type=Path, help="where the tree goes (default: a new /tmp dir)")
    p.add_argument("--keep", action="store_true", help="keep the tree")
    args = p.parse_args(argv)
    if not 1 <= args.accounts <= 5_000_000 or not 1 <= args.batch <= args.accounts:
        p.error("--accounts in [1, 5000000], --batch in [1, --accounts]")
    root = args.dir or Path(tempfile.mkdtemp(prefix="sipfarm-store-"))
    data = root / "data"
    workdir = root / "run"
    workdir.mkdir(parents=True, exist_ok=True)
    first_ok: float | None = None
    latencies: list[float] = []
    failed = 0
    farm_exit = None
    try:
        began = time.monotonic()
        batches = provision(data, args.accounts, args.batch, args.foldering)
        total = time.monotonic() - began
        rates = [args.batch / s for _, s in batches[:-1]] or [args.accounts / total]

        picks = random.Random(7)
        started = time.monotonic()
        farm, host = start_farm(data, args.members, workdir)
        phone = Phone(host, harness.SIP_PORT)
        try:
            while time.monotonic() - started < 60 and farm.poll() is None:
                if phone.register(picks.randrange(args.accounts), timeout=0.5) == 200:
                    first_ok = time.monotonic() - started
                    break
            if first_ok is not None:
                time.sleep(3)  # the farm's view settles (every member ready)
                for _ in range(args.probes):
                    t = time.monotonic()
                    if phone.register(picks.randrange(args.accounts)) == 200:
                        latencies.append((time.monotonic() - t) * 1e3)
                    else:
                        failed += 1
        finally:
            phone.close()
            farm_exit = stop_farm(farm)
        pct = harness.percentiles(latencies)
        meets = first_ok is not None and first_ok <= START_TARGET_S
        print(
            f"== the account store at {args.accounts} accounts (account foldering "
            f"{args.foldering}); {os.cpu_count()} CPUs"
        )
        print(
            f"provisioning: {args.accounts / total:.0f} accounts/s over {total:.1f} s "
            f"(first batch {rates[0]:.0f}/s, last {rates[-1]:.0f}/s)"
        )
        print(
            f"start: first 200 OK {first_ok if first_ok is None else round(first_ok, 2)} s after "
            f"'sipfarm up --members {args.members}' ({'meets' if meets else 'MISSES'} the target "
            f"<= {START_TARGET_S} s)"
        )
        print(
            f"registrations at random over the tree: {len(latencies)} ok, {failed} failed, "
            + ("-" if pct is None else f"p50/p95/p99 {pct.p50:.1f}/{pct.p95:.1f}/{pct.p99:.1f} ms")
            + " (REGISTER, 401, REGISTER, 200)"
        )
        results = {
            "accounts": args.accounts,
            "foldering": str(args.foldering),
            "provisioning_s": round(total, 1),
            "provisioning_rate": round(args.accounts / total),
            "batch_rates": [round(r) for r in rates],
            "members": args.members,
            "first_200_s": first_ok,
            "registrations_ok": len(latencies),
            "registrations_failed": failed,
            "latency_ms": None if pct is None else [pct.p50, pct.p95, pct.p99],
            "farm_exit": farm_exit,
        }
        harness.RESULTS.mkdir(parents=True, exist_ok=True)
        out = harness.RESULTS / f"store-{time.strftime('%Y%m%dT%H%M%S')}.json"
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"results: {out}")
        return 0 if meets and not failed else 1

    finally:  # after the report: removing a million directories takes minutes
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
