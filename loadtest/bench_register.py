"""Authenticated registrations: `sipfarm member` against Kamailio, same accounts, same load.

    .venv/bin/python loadtest/bench_register.py [--quick] [--duration 5] [--rates R1,R2,...]
                                                [--only sipfarm|kamailio] [--bindings N]

10,000 accounts (``u00000``..``u09999`` at example.com) are provisioned once into
loadtest/results/accounts-10000/: a sipfarm data directory (``--data``) and a db_text
directory for Kamailio (``subscriber`` with the MD5 HA1s for auth_db, ``htable`` with
the same HA1s keyed by user@domain for the htable module).  Then, for each server in
turn (sipfarm on 127.0.0.20:5060, Kamailio on 127.0.0.21:5060):

1. a rate sweep: SIPp runs loadtest/scenarios/register_auth_uac.xml (REGISTER -> 401 ->
   REGISTER with Authorization -> 200) at rising rates, one contact per account, so a
   step refreshes bindings rather than adding them;
2. memory, on a fresh server: every account registers once (the warm-up: accounts
   read, code paths hot, the in-flight working set at that rate allocated), then
   ``--bindings`` more registrations at the same rate each add a binding with a new
   contact (several per account); the growth of the server's PSS over that second
   run, scaled to 100,000 bindings, is the memory per 100k bindings.

Kamailio's credentials (``--kamailio-auth``):

- ``htable`` (default): loadtest/kamailio/registrar_htable.cfg, the HA1s loaded once at
  startup into an in-memory hash table (htable module, from the db_text ``htable``
  table) and checked with auth's ``pv_www_authenticate``: an O(1) lookup, as an
  operator who wants speed would configure it;
- ``dbtext``: loadtest/kamailio/registrar.cfg, auth_db over db_text.  db_text has no
  index: it answers every credentials query by scanning all 10,000 rows, so that
  configuration measures db_text as much as Kamailio (on the 2-core test machine, at
  saturation, roughly 3.5 times the CPU per registration and a quarter of the rate
  of the htable configuration).

Tables go to stdout, progress to stderr, everything to
loadtest/results/register-<timestamp>.json.  See loadtest/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import harness

logger = logging.getLogger("bench_register")

SERVERS = ("sipfarm", "kamailio")
#: Kamailio's configuration for each ``--kamailio-auth``.
KAMAILIO_CFGS = {
    "htable": harness.LOADTEST / "kamailio" / "registrar_htable.cfg",
    "dbtext": harness.LOADTEST / "kamailio" / "registrar.cfg",
}
DOMAIN = "example.com"
ACCOUNTS = 10_000
#: Where SIPp's contacts point (nothing listens there: a registrar never calls them).
CONTACT_PORT = 5999
#: Kamailio's shared memory in MB: usrloc keeps its bindings there (64 MB, the
#: default, holds about 100k).
KAMAILIO_SHM_MB = 256
#: Seconds to let the server's queues drain before reading its memory.
SETTLE_S = 2.0


# ------------------------------------------------------------------ the accounts


def user_name(i: int) -> str:
    return f"u{i:05d}"


def password(i: int) -> str:
    return f"pw-{i:05d}-bench"


@dataclass(frozen=True, slots=True)
class Accounts:
    """The provisioned accounts: sipfarm's data directory, Kamailio's db_text, SIPp's CSV."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def dbtext(self) -> Path:
        return self.root / "dbtext"

    @property
    def csv(self) -> Path:
        """One registration per account, each with its one contact."""
        return self.root / "accounts.csv"

    @property
    def htable(self) -> Path:
        """The db_text table loaded by registrar_htable.cfg into its hash table."""
        return self.dbtext / "htable"

    def bindings_csv(self, count: int) -> Path:
        """``count`` registrations over the accounts in turn, each with a new contact."""
        path = self.root / f"bindings-{count}.csv"
        if not path.exists():
            lines = ["SEQUENTIAL"]
            for n in range(count):
                i = n % ACCOUNTS
                contact = f"{user_name(i)}-b{n // ACCOUNTS}@{harness.SIPP_HOST}:{CONTACT_PORT}"
                lines.append(f"{user_name(i)};{DOMAIN};{password(i)};{contact}")
            _write(path, "\n".join(lines) + "\n")
        return path


def _write(path: Path, text: str) -> None:
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(text)
    temp.replace(path)


def ha1(i: int) -> str:
    """The MD5 HA1 of account ``i``: MD5(user:realm:password), the realm the domain."""
    return hashlib.md5(f"{user_name(i)}:{DOMAIN}:{password(i)}".encode()).hexdigest()


#: db_text's ``version`` file: the table versions Kamailio 5.6 checks (auth_db
#: ``subscriber`` 7, htable ``htable`` 2, as in kamailio-dbtext's version file).
DBTEXT_VERSION = "table_name(string) table_version(int)\nsubscriber:7\nhtable:2\n"


def provision_htable(accounts: Accounts) -> None:
    """Write the db_text ``htable`` table (and its version) if missing.

    One row per account: key ``user@domain`` (key_type 0, a simple key), value the HA1
    (value_type 0, a string), expires 0 (never; htable reads it only with
    ``db_expires``).  Separate from :func:`provision` so that an accounts directory
    made before this table existed gains it without being rebuilt.
    """
    version = accounts.dbtext / "version"
    if accounts.htable.exists() and version.read_text() == DBTEXT_VERSION:
        return
    rows = ["id(int,auto) key_name(string) key_type(int) value_type(int) "
            "key_value(string) expires(int)"]  # fmt: skip
    rows += [f"{i + 1}:{user_name(i)}@{DOMAIN}:0:0:{ha1(i)}:0" for i in range(ACCOUNTS)]
    _write(accounts.htable, "\n".join(rows) + "\n")
    _write(version, DBTEXT_VERSION)


def provision(root: Path = harness.RESULTS / f"accounts-{ACCOUNTS}") -> Accounts:
    """Create the accounts once (a marker file says they are complete); reuse them after.

    The sipfarm side goes through the account store's layout and settings codec (the
    bytes ``sipfarm account add`` writes), without its per-file fsyncs: this is a
    cache, rebuilt when the marker is missing.
    """
    accounts = Accounts(root)
    marker = root / "complete"
    if marker.exists():
        provision_htable(accounts)
        return accounts
    from mail.layout import Layout
    from mail.settings import AccountSettings
    from mail.store import AccountStore

    logger.info("provisioning %d accounts in %s (once)", ACCOUNTS, root)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    AccountStore(accounts.data).add_domain(DOMAIN)
    layout = Layout(accounts.data)
    accounts.dbtext.mkdir()
    rows = ["id(int,auto) username(string) domain(string) password(string,null) "
            "ha1(string) ha1b(string,null)"]  # fmt: skip
    sipp = ["SEQUENTIAL"]
    for i in range(ACCOUNTS):
        user, secret = user_name(i), password(i)
        settings = layout.settings_path(user, DOMAIN)
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_bytes(bytes(AccountSettings.new(user, DOMAIN, secret)))
        rows.append(f"{i + 1}:{user}:{DOMAIN}::{ha1(i)}:")
        sipp.append(f"{user};{DOMAIN};{secret};{user}@{harness.SIPP_HOST}:{CONTACT_PORT}")
    _write(accounts.dbtext / "subscriber", "\n".join(rows) + "\n")
    provision_htable(accounts)
    _write(accounts.csv, "\n".join(sipp) + "\n")
    marker.write_text(f"{ACCOUNTS} accounts at {DOMAIN}\n")
    return accounts


# ------------------------------------------------------------------------ memory


@dataclass(frozen=True, slots=True)
class MemoryResult:
    """The server's PSS before and after ``bindings`` more registrations."""

    name: str
    rate: int
    warmup_ok: int
    bindings: int
    failed: int
    pss_before_kib: int
    pss_after_kib: int
    error: str | None = None

    @property
    def mib_per_100k(self) -> float | None:
        if self.bindings <= 0 or self.error:
            return None
        return (self.pss_after_kib - self.pss_before_kib) / 1024 * 100_000 / self.bindings


def _register_run(
    server: harness.RunningServer, csv_path: Path, calls: int, rate: int, workdir: Path
) -> harness.SippStats:
    run = harness.SippRun(
        scenario=harness.SCENARIOS / "register_auth_uac.xml",
        target_host=server.spec.host,
        target_port=server.spec.port,
        local_host=harness.SIPP_HOST,
        local_port=harness.free_port(harness.SIPP_HOST),
        rate=rate,
        calls=calls,
        limit=max(200, rate),
        timeout_s=math.ceil(2 * calls / rate + 10),
        extra=("-inf", str(csv_path), "-auth_uri", DOMAIN),
    )
    return harness.run_sipp(run, workdir)


def measure_memory(
    spec: harness.ServerSpec, accounts: Accounts, bindings: int, rate: int, workdir: Path
) -> MemoryResult:
    """Warm up with one registration per account, then add ``bindings`` at ``rate``."""
    workdir.mkdir(parents=True, exist_ok=True)
    csv_path = accounts.bindings_csv(bindings)
    try:
        with harness.running(spec, workdir) as server:
            logger.info("%s: memory warm-up, %d registrations at %d/s", spec.name, ACCOUNTS, rate)
            warm = _register_run(server, accounts.csv, ACCOUNTS, rate, workdir / "warmup")
            time.sleep(SETTLE_S)
            before = harness.tree_pss_kib(server.pid)
            logger.info("%s: %d more bindings at %d/s", spec.name, bindings, rate)
            added = _register_run(server, csv_path, bindings, rate, workdir / "bindings")
            time.sleep(SETTLE_S)
            after = harness.tree_pss_kib(server.pid)
            server.wait_until_answering()
    except (harness.ServerError, harness.SippError) as exc:
        logger.error("%s", exc)
        return MemoryResult(spec.name, rate, 0, 0, 0, 0, 0, str(exc))
    error = None
    if warm.failed or added.failed:
        error = f"{warm.failed} warm-up and {added.failed} binding registrations failed"
    return MemoryResult(
        spec.name, rate, warm.successful, added.successful, added.failed, before, after, error
    )


def format_memory(results: list[MemoryResult]) -> str:
    lines = [
        "== memory per 100k bindings (PSS of the server's process tree, after one "
        "registration per account, then more with new contacts)",
        f"{'server':>10} {'rate/s':>7} {'bindings':>9} {'failed':>7} {'PSS before MiB':>15} "
        f"{'PSS after MiB':>14} {'MiB/100k':>9}",
    ]
    for m in results:
        per = m.mib_per_100k
        lines.append(
            f"{m.name:>10} {m.rate:>7} {m.bindings:>9} {m.failed:>7} "
            f"{m.pss_before_kib / 1024:>15.1f} {m.pss_after_kib / 1024:>14.1f} "
            f"{'-' if per is None else f'{per:.1f}':>9}" + (f"  ({m.error})" if m.error else "")
        )
    return "\n".join(lines)


# -------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="short run: 2 s steps, 40 s per sweep, 10,000 bindings")  # fmt: skip
    parser.add_argument("--duration", type=float, help="seconds per step (5; --quick 2)")
    harness.add_sweep_arguments(parser, unit="registrations/s", start_rate=250, servers=SERVERS)
    parser.add_argument("--kamailio-auth", choices=tuple(KAMAILIO_CFGS), default="htable",
                        help="where Kamailio finds the HA1s: htable (default; in memory, "
                        "loaded at startup, hash lookup) or dbtext (auth_db over db_text, "
                        "which scans every row per lookup)")  # fmt: skip
    parser.add_argument("--budget", type=float, help="sweep seconds per server (120; --quick 40)")
    parser.add_argument("--bindings", type=int,
                        help="bindings added for the memory figure (50000; --quick 10000; "
                        "0: no memory run)")  # fmt: skip
    parser.add_argument("--mem-rate", type=int,
                        help="registrations/s of the memory run (default: half the server's "
                        "max passing rate, at most 2000; 500 without a sweep result)")  # fmt: skip
    parser.add_argument("--debug", action="store_true", help="start sipfarm with --debug")
    parser.add_argument("--keep", action="store_true", help="keep the SIPp and server files")
    args = parser.parse_args(argv)
    args.duration = args.duration or (2.0 if args.quick else 5.0)
    args.budget = args.budget or (40.0 if args.quick else 120.0)
    if args.bindings is None:
        args.bindings = 10_000 if args.quick else 50_000
    if args.duration <= 0 or args.duration > 60:
        parser.error("--duration must be in (0, 60]")
    if any(rate <= 0 for rate in args.rates) or args.start_rate <= 0:
        parser.error("rates must be positive")
    if not 0 <= args.bindings <= 200_000:
        parser.error("--bindings must be in [0, 200000]")
    return args


def memory_rate(report: harness.ServerReport | None, fixed: int | None) -> int:
    if fixed:
        return fixed
    best = report.best if report else None
    if best is None:
        return 500
    return max(100, min(2000, best.target_rate // 2))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    accounts = provision()
    config = harness.SweepConfig(
        scenario=harness.SCENARIOS / "register_auth_uac.xml",
        duration_s=args.duration,
        start_rate=args.start_rate,
        rates=args.rates,
        budget_s=args.budget,
        # The digest uri must be the Request-URI, sip:example.com: SIPp's own is
        # sip:<server ip>:<port>, which sipfarm refuses (400).
        sipp_extra=("-inf", str(accounts.csv), "-auth_uri", DOMAIN),
    )
    memory: list[MemoryResult] = []
    with tempfile.TemporaryDirectory(prefix="sipfarm-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "kamailio-run").mkdir()
        specs = {
            "sipfarm": harness.sipfarm_spec(debug=args.debug, extra=("--data", str(accounts.data))),
            "kamailio": harness.kamailio_spec(
                workdir / "kamailio-run",
                cfg=KAMAILIO_CFGS[args.kamailio_auth],
                extra=("-m", str(KAMAILIO_SHM_MB), "-A", f'DBURL="text://{accounts.dbtext}"'),
            ),
        }
        chosen = [specs[name] for name in SERVERS if args.only in (None, name)]
        reports = harness.bench(chosen, config, workdir)
        if args.bindings:
            for spec, report in zip(chosen, reports, strict=True):
                rate = memory_rate(report, args.mem_rate)
                memory.append(
                    measure_memory(
                        spec, accounts, args.bindings, rate, workdir / f"{spec.name}-memory"
                    )
                )
        if args.keep:
            kept = Path(tempfile.mkdtemp(prefix="sipfarm-bench-kept-"))
            for path in workdir.iterdir():
                path.rename(kept / path.name)
            logger.info("files kept in %s", kept)
    for report in reports:
        print(harness.format_table(report, unit="reg"))
        print()
    print(harness.format_summary(reports, unit="reg"))
    if args.only != "sipfarm":
        print(f"kamailio credentials: {args.kamailio_auth} "
              f"({KAMAILIO_CFGS[args.kamailio_auth].relative_to(harness.LOADTEST)})")  # fmt: skip
    if memory:
        print()
        print(format_memory(memory))
    path = harness.write_json("register", config, reports)
    document = json.loads(path.read_text())
    document["kamailio_auth"] = args.kamailio_auth
    document["kamailio_cfg"] = str(KAMAILIO_CFGS[args.kamailio_auth].relative_to(harness.LOADTEST))
    document["memory"] = [{**dataclasses.asdict(m), "mib_per_100k": m.mib_per_100k} for m in memory]
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"results: {path}")
    failed = any(report.error for report in reports) or any(m.error for m in memory)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # every process was stopped on the way out
        sys.exit(130)
