"""OPTIONS throughput: `sipfarm member` against Kamailio, same answers, same SIPp load.

    .venv/bin/python loadtest/bench_options.py [--duration 5] [--rates 1000,2000,...]
                                               [--only sipfarm|kamailio] [--transport u1|t1]

Each server in turn (sipfarm on 127.0.0.20:5060, Kamailio on 127.0.0.21:5060) is
started, swept by SIPp with loadtest/scenarios/options_uac.xml at rising rates, and
stopped.  Tables go to stdout, progress to stderr, and everything to
loadtest/results/options-<timestamp>.json.  See loadtest/README.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import harness

logger = logging.getLogger("bench_options")

SERVERS = ("sipfarm", "kamailio")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per step (5)")
    harness.add_sweep_arguments(parser, unit="calls/s", start_rate=1000, servers=SERVERS)
    parser.add_argument("--transport", choices=("u1", "t1"), default="u1", help="SIPp -t (u1)")
    parser.add_argument("--budget", type=float, default=120.0, help="seconds per server (120)")
    parser.add_argument("--debug", action="store_true", help="start sipfarm with --debug")
    parser.add_argument("--keep", action="store_true", help="keep the SIPp and server files")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.duration > 60:
        parser.error("--duration must be in (0, 60]")
    if any(rate <= 0 for rate in args.rates):
        parser.error("--rates must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    config = harness.SweepConfig(
        scenario=harness.SCENARIOS / "options_uac.xml",
        duration_s=args.duration,
        start_rate=args.start_rate,
        rates=args.rates,
        budget_s=args.budget,
        transport=args.transport,
    )
    with tempfile.TemporaryDirectory(prefix="sipfarm-bench-") as tmp:
        workdir = Path(tmp)
        specs = {
            "sipfarm": harness.sipfarm_spec(debug=args.debug),
            "kamailio": harness.kamailio_spec(workdir / "kamailio-run"),
        }
        (workdir / "kamailio-run").mkdir()
        chosen = [specs[name] for name in SERVERS if args.only in (None, name)]
        reports = harness.bench(chosen, config, workdir)
        if args.keep:
            kept = Path(tempfile.mkdtemp(prefix="sipfarm-bench-kept-"))
            for path in workdir.iterdir():
                path.rename(kept / path.name)
            logger.info("files kept in %s", kept)
    for report in reports:
        print(harness.format_table(report))
        print()
    print(harness.format_summary(reports))
    path = harness.write_json("options", config, reports)
    print(f"results: {path}")
    return 1 if any(report.error for report in reports) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # every process was stopped on the way out
        sys.exit(130)
