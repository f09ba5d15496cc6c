"""Calls through the proxy: `sipfarm member` against Kamailio, same callee, same load.

    .venv/bin/python loadtest/bench_calls.py [--quick] [--duration 5] [--hold 3]
                                             [--rates R1,R2,...] [--only sipfarm|kamailio]

Each server in turn (sipfarm on 127.0.0.20:5060 with ``--trusted 127.0.0.0/8``,
Kamailio with loadtest/kamailio/calls.cfg on 127.0.0.21:5060) is started and swept at
rising call rates.  Every step:

1. a callee registers: SIPp runs loadtest/scenarios/register_contact.xml from the
   UAS address (127.0.0.40, a free port), binding a fresh account (u09999@example.com,
   then u09998, ...) to it;
2. a SIPp UAS (loadtest/scenarios/call_uas.xml) starts on that address, expecting the
   step's calls;
3. the SIPp UAC (loadtest/scenarios/call_uac.xml) places ``rate x duration`` calls
   u00000 -> sip:<callee>@example.com through the server: INVITE/100/180/200/ACK,
   the call held ``--hold`` seconds, BYE/200;
4. the UAS is waited for, and stopped by PID if it lingers.

A fresh callee and port each step: after an overloaded step the server still
retransmits INVITEs and 200s of its calls for up to 32 s (Timers B and H), and a UAS on
the same address would take them for new calls.

A step passes as in bench_options.py (no failed call, retransmissions under 0.1 %,
97 % of the rate achieved).  Response times are INVITE -> 200.  CPU is the server's,
per completed call.  Tables go to stdout, progress to stderr, everything to
loadtest/results/calls-<timestamp>.json.  See loadtest/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bench_register
import harness

logger = logging.getLogger("bench_calls")

SERVERS = ("sipfarm", "kamailio")
CALLS_CFG = harness.LOADTEST / "kamailio" / "calls.cfg"
UAS_HOST = "127.0.0.40"
CALLER = 0
KAMAILIO_SHM_MB = 256


@dataclass(frozen=True, slots=True)
class UasResult:
    """What the SIPp UAS of one step saw."""

    server: str
    rate: int
    callee: str
    expected: int
    successful: int
    failed: int
    returncode: int


def _account_line(i: int, last: str) -> str:
    """An injection line ``user;domain;password;last``."""
    user = bench_register.user_name(i)
    return f"{user};{bench_register.DOMAIN};{bench_register.password(i)};{last}"


def _sipp_argv(scenario: str, port: int, target: str | None, *args: str) -> list[str]:
    """SIPp on the UAS's address and ``port``; ``target`` is ``host:port`` for a client run."""
    sipp = shutil.which("sipp") or "/usr/bin/sipp"
    return [
        sipp, *([target] if target else []), "-sf", str(harness.SCENARIOS / scenario),
        "-i", UAS_HOST, "-bind_local", "-p", str(port), "-ci", UAS_HOST,
        "-buff_size", str(harness.SIPP_BUFFER_BYTES),
        "-nostdin", "-trace_stat", "-stf", "stat.csv", "-fd", "1",
        "-trace_err", "-error_file", "errors.log",
        *args,
    ]  # fmt: skip


def _wait_port_taken(host: str, port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 5.0
    while harness.port_is_free(host, port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise harness.SippError(f"the SIPp UAS did not bind {host}:{port}")
        time.sleep(0.02)


class Callee:
    """``around_step`` for one server: register a callee, run its UAS around the step.

    It also writes the UAC's injection file (``calls_csv``, caller;domain;password;
    callee) for the step's callee.
    """

    def __init__(self, spec: harness.ServerSpec, calls_csv: Path, hold_s: float):
        self.spec = spec
        self.calls_csv = calls_csv
        self.hold_s = hold_s
        self.results: list[UasResult] = []

    def register(self, workdir: Path, callee: int, port: int) -> None:
        """REGISTER the UAS's address (from it: same address and port) and expect success."""
        regdir = workdir / "register"
        regdir.mkdir(parents=True)
        user = bench_register.user_name(callee)
        csv_path = regdir / "callee.csv"
        csv_path.write_text(f"SEQUENTIAL\n{_account_line(callee, f'{user}@{UAS_HOST}:{port}')}\n")
        argv = _sipp_argv(
            "register_contact.xml", port, f"{self.spec.host}:{self.spec.port}",
            "-inf", str(csv_path), "-auth_uri", bench_register.DOMAIN,
            "-m", "1", "-timeout", "10s",
            "-recv_timeout", "5000", "-max_non_invite_retrans", "3",
        )  # fmt: skip
        with (regdir / "stdout").open("wb") as out:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=subprocess.STDOUT, cwd=regdir,
                                       start_new_session=True)  # fmt: skip
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            pass
        finally:
            harness.stop_process(process)
        stat = regdir / "stat.csv"
        if not stat.exists() or int(harness.read_stat_csv(stat)["SuccessfulCall(C)"]) != 1:
            raise harness.SippError(
                f"the callee's REGISTER to {self.spec.name} failed: "
                + (regdir / "stdout").read_text(errors="replace")[-2000:]
            )

    @contextlib.contextmanager
    def __call__(self, rate: int, calls: int, workdir: Path) -> Iterator[None]:
        uasdir = workdir.with_name(workdir.name + "-uas")
        uasdir.mkdir(parents=True)
        callee = bench_register.ACCOUNTS - 1 - len(self.results)
        user = bench_register.user_name(callee)
        port = harness.free_port(UAS_HOST)
        self.register(uasdir, callee, port)
        self.calls_csv.write_text(f"SEQUENTIAL\n{_account_line(CALLER, user)}\n")
        timeout = math.ceil(2 * calls / rate + self.hold_s + 20)
        argv = _sipp_argv("call_uas.xml", port, None, "-m", str(calls), "-timeout", f"{timeout}s")
        with (uasdir / "stdout").open("wb") as out:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=subprocess.STDOUT, cwd=uasdir,
                                       start_new_session=True)  # fmt: skip
        try:
            _wait_port_taken(UAS_HOST, port, process)
            yield
            # The UAC is done: the UAS ends with its last BYE, or lingers on calls
            # that never reached it.
            try:
                process.wait(self.hold_s + 5)
            except subprocess.TimeoutExpired:
                logger.warning("%s: the UAS still waits for calls: stopping it", self.spec.name)
        finally:
            returncode = harness.stop_process(process)
        stat = uasdir / "stat.csv"
        row = harness.read_stat_csv(stat) if stat.exists() else {}
        result = UasResult(
            self.spec.name, rate, user, calls, int(row.get("SuccessfulCall(C)", 0)),
            int(row.get("FailedCall(C)", 0)), returncode,
        )  # fmt: skip
        self.results.append(result)
        if result.successful != calls or result.failed:
            logger.info("%s: UAS saw %d/%d calls complete, %d failed", self.spec.name,
                        result.successful, calls, result.failed)  # fmt: skip


def format_uas(results: list[UasResult]) -> str:
    lines = [
        "== callee side (the SIPp UAS of each step)",
        f"{'server':>10} {'rate/s':>7} {'callee':>7} {'calls':>7} {'uas ok':>7} {'uas fail':>8}",
    ]
    for r in results:
        lines.append(
            f"{r.server:>10} {r.rate:>7} {r.callee:>7} {r.expected:>7} "
            f"{r.successful:>7} {r.failed:>8}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="short run: 2 s steps, 1 s hold, 45 s per server")  # fmt: skip
    parser.add_argument("--duration", type=float, help="seconds per step (5; --quick 2)")
    parser.add_argument("--hold", type=float, help="seconds a call is held (3; --quick 1)")
    harness.add_sweep_arguments(parser, unit="calls/s", start_rate=100, servers=SERVERS)
    parser.add_argument("--budget", type=float, help="seconds per server (150; --quick 45)")
    parser.add_argument("--debug", action="store_true", help="start sipfarm with --debug")
    parser.add_argument("--keep", action="store_true", help="keep the SIPp and server files")
    args = parser.parse_args(argv)
    args.duration = args.duration or (2.0 if args.quick else 5.0)
    args.hold = args.hold if args.hold is not None else (1.0 if args.quick else 3.0)
    args.budget = args.budget or (45.0 if args.quick else 150.0)
    if args.duration <= 0 or args.duration > 60:
        parser.error("--duration must be in (0, 60]")
    if not 0 <= args.hold <= 30:
        parser.error("--hold must be in [0, 30]")
    if any(rate <= 0 for rate in args.rates) or args.start_rate <= 0:
        parser.error("rates must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    accounts = bench_register.provision()
    reports: list[harness.ServerReport] = []
    callees: list[Callee] = []
    with tempfile.TemporaryDirectory(prefix="sipfarm-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "kamailio-run").mkdir()
        calls_csv = workdir / "calls.csv"
        config = harness.SweepConfig(
            scenario=harness.SCENARIOS / "call_uac.xml",
            duration_s=args.duration,
            start_rate=args.start_rate,
            rates=args.rates,
            budget_s=args.budget,
            sipp_extra=("-inf", str(calls_csv), "-d", str(round(args.hold * 1000))),
            call_hold_s=args.hold,
        )
        specs = {
            "sipfarm": harness.sipfarm_spec(
                debug=args.debug,
                extra=("--data", str(accounts.data), "--trusted", "127.0.0.0/8"),
            ),
            "kamailio": harness.kamailio_spec(
                workdir / "kamailio-run", cfg=CALLS_CFG, extra=("-m", str(KAMAILIO_SHM_MB))
            ),
        }
        for name in SERVERS:
            if args.only not in (None, name):
                continue
            callee = Callee(specs[name], calls_csv, args.hold)
            callees.append(callee)
            server_config = dataclasses.replace(config, around_step=callee)
            reports.extend(harness.bench([specs[name]], server_config, workdir))
        if args.keep:
            kept = Path(tempfile.mkdtemp(prefix="sipfarm-bench-kept-"))
            for path in workdir.iterdir():
                path.rename(kept / path.name)
            logger.info("files kept in %s", kept)
    for report in reports:
        print(harness.format_table(report, unit="call"))
        print()
    print(harness.format_summary(reports, unit="call"))
    uas = [result for callee in callees for result in callee.results]
    print()
    print(format_uas(uas))
    path = harness.write_json("calls", config, reports)
    document = json.loads(path.read_text())
    document["uas"] = [dataclasses.asdict(result) for result in uas]
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"results: {path}")
    return 1 if any(report.error for report in reports) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # every process was stopped on the way out
        sys.exit(130)
