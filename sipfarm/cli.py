"""The ``sipfarm`` command (the CLI edge: options are checked here, once)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import csv
import dataclasses
import http.client
import ipaddress
import json
import logging
import os
import re
import socket
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import aetcd
import msgpack
import uvloop

from cluster.etcd import PREFIX
from cluster.etcdproc import EtcdError
from cluster.membership import ROLES, MemberInfo, View, decode_member
from cluster.ring import Ring
from mail import names, provision
from mail.errors import (
    AccountExists,
    AccountStoreError,
    BadName,
    DomainExists,
    NoSuchAccount,
    NoSuchDomain,
)
from mail.foldering import BadLayout, Method, fast_index
from mail.store import AccountStore

from . import __version__
from .log import setup as setup_logging
from .node import Member, MemberConfig
from .ownership import is_token
from .provisioning import PASSWORD_FILE, set_admin_password
from .transport.steering import Steering
from .up import FarmBusy, FarmConfig, address_text, farm_running, read_farm
from .up import run as run_farm

EXIT_STORE = 1
EXIT_FAILED = 1  # the command could not do it (etcd or a member unreachable, no such member)
EXIT_USAGE = 2

#: Where ``up`` keeps the farm (storage, etcd, farm.json) and where the other commands look.
DEFAULT_DATA = Path("sipfarm-data")

#: Where ``member ready|not-ready`` finds the admin password (not on the command line,
#: where ``ps`` shows it).
PASSWORD_ENV = "SIPFARM_ADMIN_PASSWORD"
#: How long ``status`` and ``member ready|not-ready`` wait for etcd.
ETCD_TIMEOUT = 5.0

#: Call-IDs in the sample that ``status`` places on the ring to show each member's share.
SHARE_SAMPLE = 10_000


class Failed(Exception):
    """The command cannot do what it was asked: one line on stderr, exit 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One clear line on stderr, exit 2."""
        self.exit(EXIT_USAGE, f"sipfarm: {message} (see 'sipfarm --help')\n")


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, "5060"
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {host!r}") from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"not a port: {port!r}")
    return host, int(port)


_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def _etcd(text: str) -> tuple[str, int]:
    """etcd's client address: ``HOST:PORT`` or ``http://HOST:PORT`` (a name or an IP)."""
    rest = text.removeprefix("http://").rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep:
        host, port = rest, "2379"
    host = host.strip("[]")
    if not _HOSTNAME.fullmatch(host) and not _is_ip(host):
        raise argparse.ArgumentTypeError(f"not an etcd address (HOST:PORT): {text!r}")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"not a port: {port!r}")
    return host, int(port)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _roles(text: str) -> frozenset[str]:
    roles = frozenset(r.strip() for r in text.split(",") if r.strip())
    if not roles or not roles <= ROLES:
        raise argparse.ArgumentTypeError(f"roles are frontend and backend: {text!r}")
    return roles


def _count(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 256:
        raise argparse.ArgumentTypeError(f"a number of members is 1 to 256: {text!r}")
    return int(text)


def _token(text: str) -> str:
    token = text.lower()
    if not is_token(token):
        raise argparse.ArgumentTypeError(f"a token is 1-16 ASCII letters and digits: {text!r}")
    return token


def _steering(text: str) -> Steering:
    try:
        return Steering.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _prefix(text: str) -> str:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an address or prefix: {text!r}") from None
    return text


def _algorithms(text: str) -> tuple[str, ...]:
    algs = tuple(a.strip().upper() for a in text.split(",") if a.strip())
    bad = [a for a in algs if a not in ("MD5", "SHA-256")]
    if not algs or bad:
        raise argparse.ArgumentTypeError(f"digest algorithms are MD5 and SHA-256: {text!r}")
    return algs


def _domain(text: str) -> str:
    try:
        return names.domain_name(text)
    except BadName as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _user_at_domain(text: str) -> tuple[str, str]:
    try:
        return names.address(text)
    except BadName as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        metavar="DIR",
        help=f"storage directory (default ./{DEFAULT_DATA})",
    )


def _add_farm(p: argparse.ArgumentParser) -> argparse._MutuallyExclusiveGroup:
    """How a command finds the farm: its etcd, or the farm.json that ``up`` writes."""
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help=f"the data directory of 'sipfarm up' (default ./{DEFAULT_DATA})",
    )
    where.add_argument(
        "--etcd", type=_etcd, metavar="URL", help="the farm's etcd (HOST:PORT or http://HOST:PORT)"
    )
    return where


def _method(text: str) -> Method:
    try:
        return Method.parse(text)
    except BadLayout as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fast_index(text: str) -> int:
    try:
        return fast_index(text)
    except BadLayout as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_layout(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--account-foldering",
        type=_method,
        metavar="METHOD",
        help="account folders: none, 1 (j.sub/), 1/1 (j.sub/s.sub/), 2/1 (js.sub/m.sub/) …",
    )
    p.add_argument(
        "--domain-foldering",
        type=_method,
        metavar="METHOD",
        help="domain folders of the whole store (c.sub/company.com/): none, 1, 1/1 …",
    )
    p.add_argument(
        "--fast-storage",
        type=_fast_index,
        metavar="N",
        help="account.settings/.info under 'fast' after the Nth path element (0: off)",
    )


def _add_store_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    d = sub.add_parser("domain", help="add, list, remove domains; switch their foldering")
    dsub = d.add_subparsers(dest="action", required=True, parser_class=_Parser)
    a = dsub.add_parser("add", help="add a domain")
    a.add_argument("domain", type=_domain, metavar="DOMAIN")
    _add_layout(a)
    _add_data(a)
    a = dsub.add_parser(
        "set",
        help="switch the domain's (or the store's) foldering or fast storage, moving the "
        "directories while the farm serves (no option: finish a move a crash left)",
    )
    a.add_argument("domain", type=_domain, metavar="DOMAIN")
    _add_layout(a)
    _add_data(a)
    a = dsub.add_parser("remove", help="remove a domain and its accounts")
    a.add_argument("domain", type=_domain, metavar="DOMAIN")
    _add_data(a)
    _add_data(dsub.add_parser("list", help="list the domains"))

    acc = sub.add_parser("account", help="add, list and remove accounts, set passwords")
    asub = acc.add_subparsers(dest="action", required=True, parser_class=_Parser)
    for action, text in (("add", "add an account"), ("passwd", "set an account's password")):
        x = asub.add_parser(action, help=text)
        x.add_argument("address", type=_user_at_domain, metavar="USER@DOMAIN")
        x.add_argument("--password", required=True, metavar="PW")
        _add_data(x)
    x = asub.add_parser("remove", help="remove an account")
    x.add_argument("address", type=_user_at_domain, metavar="USER@DOMAIN")
    _add_data(x)
    x = asub.add_parser("list", help="list the accounts (of DOMAIN, or of every domain)")
    x.add_argument("domain", type=_domain, nargs="?", metavar="DOMAIN")
    _add_data(x)
    x = asub.add_parser(
        "import", help="add many accounts from a CSV file of USER@DOMAIN,PASSWORD lines"
    )
    x.add_argument("file", type=Path, metavar="FILE.csv")
    _add_data(x)

    adm = sub.add_parser("admin", help="the provisioning API's admin password")
    admsub = adm.add_subparsers(dest="action", required=True, parser_class=_Parser)
    x = admsub.add_parser(
        "password", help="set the admin password of the HTTP provisioning API (user admin)"
    )
    x.add_argument("--password", required=True, metavar="PW")
    _add_data(x)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sipfarm", description="A SIP Farm signaling server.")
    p.add_argument("--version", action="version", version=f"sipfarm {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    m = sub.add_parser(
        "member",
        help="run one member in the foreground (--sip), or make one not-ready or ready",
        description="Run one member: 'sipfarm member --sip HOST:PORT [options]'.  "
        "Drain one, or put it back: 'sipfarm member not-ready|ready TOKEN "
        "[--data DIR | --etcd URL]'.",
    )
    m.add_argument(
        "action",
        nargs="?",
        choices=("not-ready", "ready"),
        metavar="ACTION",
        help="not-ready (drain the member TOKEN) or ready (put it back into rotation)",
    )
    m.add_argument("member_token", nargs="?", type=_token, metavar="TOKEN", help="its token")
    m.add_argument(
        "--sip",
        type=_address,
        metavar="HOST:PORT",
        help="UDP and TCP address to serve SIP on (required to run a member)",
    )
    m.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help=f"storage directory (with not-ready/ready: the farm's, default ./{DEFAULT_DATA})",
    )
    m.add_argument(
        "--etcd",
        type=_etcd,
        metavar="URL",
        help="join the farm whose membership is on this etcd (HOST:PORT or http://HOST:PORT)",
    )
    m.add_argument(
        "--cluster",
        type=_address,
        metavar="HOST:PORT",
        help="this member's cluster link address (required with --etcd)",
    )
    m.add_argument(
        "--roles",
        type=_roles,
        default=frozenset(ROLES),
        metavar="LIST",
        help="frontend, backend or both (default frontend,backend)",
    )
    m.add_argument(
        "--advertise",
        type=_address,
        metavar="HOST:PORT",
        help="address put in Via and Record-Route (default: --sip; for 0.0.0.0, this host's)",
    )
    m.add_argument("--token", type=_token, help="member token (default: random)")
    m.add_argument(
        "--http",
        type=_address,
        metavar="HOST:PORT",
        help="admin HTTP endpoint: GET /health, GET /status, POST /not-ready, POST /ready",
    )
    m.add_argument(
        "--trusted",
        action="append",
        default=[],
        type=_prefix,
        metavar="PREFIX",
        help="address or prefix whose requests are not challenged (repeatable)",
    )
    m.add_argument(
        "--digest-algorithms",
        type=_algorithms,
        default=("MD5", "SHA-256"),
        metavar="LIST",
        help="digest challenges offered, in order (default MD5,SHA-256)",
    )
    m.add_argument(
        "--no-sync",
        dest="sync",
        action="store_false",
        help="answer REGISTER without fsyncing its bindings first (they survive a member's "
        "death, not the host's; for benchmarks)",
    )
    m.add_argument(
        "--steering",
        type=_steering,
        help=argparse.SUPPRESS,  # PROGRAM,SOCKETS,TOKENS: descriptors that sipfarm up passes
    )
    m.add_argument("--debug", action="store_true", help="log every packet")

    for name, text in (
        ("not-ready", "drain a member: health probes get 503, work under way finishes"),
        ("ready", "put a drained member back into rotation"),
    ):
        c = sub.add_parser(name, help=text)
        c.add_argument(
            "--http", type=_address, required=True, metavar="HOST:PORT", help="its admin endpoint"
        )

    st = sub.add_parser(
        "status",
        help="the farm's view (members, states, ring shares), or one member's (--http)",
    )
    where = _add_farm(st)
    where.add_argument(
        "--http",
        type=_address,
        metavar="HOST:PORT",
        help="one member's admin endpoint: its state, whether it is idle, its counters",
    )
    st.add_argument("--json", action="store_true", help="print the farm's view as JSON")

    u = sub.add_parser("up", help="start the one-host farm on the embedded default")
    u.add_argument(
        "--sip",
        type=_address,
        default=("0.0.0.0", 5060),
        metavar="HOST:PORT",
        help="SIP address every member serves (default 0.0.0.0:5060)",
    )
    u.add_argument(
        "--members",
        type=_count,
        default=os.cpu_count() or 1,
        metavar="N",
        help="member processes (default: one per core, here %(default)s)",
    )
    _add_data(u)
    u.add_argument(
        "--advertise",
        type=_address,
        metavar="HOST:PORT",
        help="address put in Via and Record-Route (default: this host's)",
    )
    u.add_argument(
        "--trusted",
        action="append",
        default=[],
        type=_prefix,
        metavar="PREFIX",
        help="address or prefix whose requests are not challenged (repeatable)",
    )
    u.add_argument(
        "--no-sync",
        dest="sync",
        action="store_false",
        help="answer REGISTER without fsyncing its bindings first (they survive a member's "
        "death, not the host's; for benchmarks)",
    )
    u.add_argument(
        "--no-steering",
        dest="steering",
        action="store_false",
        help="let the kernel's hash place every datagram (each is then relayed to its "
        "member); by default an eBPF program steers responses to the member of their "
        "branch and requests to the owner of their Call-ID",
    )
    u.add_argument("--debug", action="store_true", help="log every packet")
    _add_store_commands(sub)
    return p


def _advertised(host: str, port: int, given: tuple[str, int] | None) -> tuple[str, int]:
    """What phones are told to send to: ``given``, else the bound address, else (for a
    wildcard bind) the address this host reaches others from, else loopback."""
    if given is not None:
        return given
    if host not in ("0.0.0.0", "::"):
        return host, port
    family = socket.AF_INET6 if host == "::" else socket.AF_INET
    probe = "2001:db8::1" if host == "::" else "192.0.2.1"  # documentation addresses
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((probe, 9))  # no packet is sent: this only picks the route
            return s.getsockname()[0], port
    except OSError:  # no route at all: a host on its own
        return ("::1" if host == "::" else "127.0.0.1"), port


def _run_member(config: MemberConfig, debug: bool) -> int:
    setup_logging(debug)
    host, port = config.host, config.port
    try:
        if config.data is not None:
            config.data.mkdir(parents=True, exist_ok=True)
        member = Member(config)
    except OSError as exc:
        print(f"sipfarm: {_describe(exc)}", file=sys.stderr)
        return EXIT_STORE
    try:
        uvloop.run(member.run())
    except OSError as exc:
        print(f"sipfarm: cannot serve on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    # The member has stopped serving and logged its counters; what it held is in memory
    # only.  Freeing a loaded member's objects one by one at interpreter exit took
    # seconds (5 s with 20k live transactions), long enough for a supervisor to SIGKILL
    # it: end the process here instead.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _admin(command: str, address: tuple[str, int]) -> int:
    """Ask a member's admin endpoint; print its JSON answer; exit 1 when it cannot be asked."""
    method, path = ("GET", "/status") if command == "status" else ("POST", f"/{command}")
    headers = {}
    password = os.environ.get(PASSWORD_ENV)
    if password:
        basic = base64.b64encode(f"admin:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
    conn = http.client.HTTPConnection(address[0], address[1], timeout=5)
    try:
        conn.request(method, path, headers=headers)
        answer = conn.getresponse()
        body = answer.read().decode("utf-8", "replace")
    except OSError as exc:
        print(f"sipfarm: cannot reach {address[0]}:{address[1]}: {exc}", file=sys.stderr)
        return EXIT_STORE
    finally:
        conn.close()
    print(body, end="")
    if answer.status == 401:
        print(f"sipfarm: the member wants the admin password: set {PASSWORD_ENV}", file=sys.stderr)
    return 0 if answer.status == 200 else EXIT_STORE


def _admin_password(args: argparse.Namespace) -> int:
    """``admin password``: kept as a salted PBKDF2 key in the data directory (every member
    reads it)."""
    try:
        args.data.mkdir(parents=True, exist_ok=True)
        set_admin_password(args.data, args.password)
    except ValueError as exc:
        print(f"sipfarm: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"sipfarm: {_describe(exc)}", file=sys.stderr)
        return EXIT_STORE
    print(f"admin password set in {args.data / PASSWORD_FILE}")
    return 0


def _run_store(args: argparse.Namespace) -> int:
    """``domain`` and ``account``: one line (or the list) on stdout, one error line on stderr."""
    store = AccountStore(args.data)
    try:
        for line in _store_action(store, args):
            print(line)
    except (BadName, BadLayout, BadImport) as exc:
        print(f"sipfarm: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (AccountStoreError, OSError) as exc:
        print(f"sipfarm: {_describe(exc)}", file=sys.stderr)
        return EXIT_STORE
    return 0


def _progress(text: str) -> None:
    print(text, flush=True)


def _store_action(store: AccountStore, args: argparse.Namespace) -> list[str]:
    what = (args.command, args.action)
    if what == ("domain", "add"):
        return _domain_add(store, args)
    if what == ("domain", "set"):
        return _domain_set(store, args)
    if what == ("domain", "remove"):
        store.remove_domain(args.domain)
        return [f"domain {args.domain} removed"]
    if what == ("domain", "list"):
        return store.domains()
    if what == ("account", "list"):
        domains = [args.domain] if args.domain else store.domains()
        return [f"{user}@{domain}" for domain in domains for user in store.accounts(domain)]
    if what == ("account", "import"):
        return _account_import(store, args.file)
    user, domain = args.address
    if what == ("account", "add"):
        store.add_account(user, domain, args.password)
        return [f"account {user}@{domain} added"]
    if what == ("account", "passwd"):
        store.set_password(user, domain, args.password)
        return [f"account {user}@{domain} password set"]
    if what == ("account", "remove"):
        store.remove_account(user, domain)
        return [f"account {user}@{domain} removed"]
    raise AssertionError(what)


def _domain_add(store: AccountStore, args: argparse.Namespace) -> list[str]:
    """``domain add``: ``--domain-foldering`` only sets the store's while it has no domain."""
    view = provision.add_domain(
        store,
        args.domain,
        account_foldering=args.account_foldering,
        domain_foldering=args.domain_foldering,
        fast=args.fast_storage,
    )
    return [f"{view} (added)"]


def _domain_set(store: AccountStore, args: argparse.Namespace) -> list[str]:
    """``domain set``: the switch; the move runs here, with progress, then one line each."""
    reports, view = provision.set_domain(
        store,
        args.domain,
        account_foldering=args.account_foldering,
        domain_foldering=args.domain_foldering,
        fast=args.fast_storage,
        progress=_progress,
    )
    lines = [f"moved {r.what}: {r.moved} moved in {r.seconds:.1f} s" for r in reports]
    return [*lines, str(view)]


class BadImport(ValueError):
    """A line of an import file that is not ``USER@DOMAIN,PASSWORD``."""


def _account_import(store: AccountStore, path: Path) -> list[str]:
    """``account import FILE.csv``: every line checked, then one batch of writes."""
    rows: list[tuple[str, str, str]] = []
    lines: dict[tuple[str, str], int] = {}
    try:
        _read_import(path, rows, lines)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BadImport(f"{path}: not a UTF-8 CSV file: {exc}") from None
    started = time.monotonic()
    try:
        count = store.add_accounts(rows, progress=lambda k: _progress(f"{k} accounts written"))
    except AccountExists as exc:
        user, _, domain = str(exc).rpartition("@")
        raise AccountExists(f"{exc} (line {lines[user, domain]})") from None
    seconds = time.monotonic() - started
    rate = count / seconds if seconds > 0 else float(count)
    return [f"{count} accounts imported in {seconds:.1f} s ({rate:.0f} accounts/s)"]


def _read_import(
    path: Path, rows: list[tuple[str, str, str]], lines: dict[tuple[str, str], int]
) -> None:
    with open(path, newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != 2 or not row[1]:
                raise BadImport(f"{path} line {n}: not USER@DOMAIN,PASSWORD")
            try:
                user, domain = names.address(row[0].strip())
            except BadName as exc:
                raise BadImport(f"{path} line {n}: {exc}") from None
            if (user, domain) in lines:
                raise BadImport(
                    f"{path} line {n}: {user}@{domain} is also on line {lines[user, domain]}"
                )
            lines[user, domain] = n
            rows.append((user, domain, row[1]))


def _describe(exc: Exception) -> str:
    if isinstance(exc, DomainExists):
        return f"domain {exc} already exists"
    if isinstance(exc, NoSuchDomain):
        return f"no such domain: {exc}"
    if isinstance(exc, AccountExists):
        return f"account {exc} already exists"
    if isinstance(exc, NoSuchAccount):
        return f"no such account: {exc}"
    if isinstance(exc, OSError):
        return f"{exc.filename or 'storage'}: {exc.strerror or exc}"
    return str(exc)


# -- the farm: status and member not-ready|ready TOKEN ------------------------------------


def _farm_etcd(data: Path | None, etcd: tuple[str, int] | None) -> tuple[str, int]:
    """The farm's etcd: ``--etcd``, else the one in ``<data>/farm.json`` of a running ``up``."""
    if etcd is not None:
        return etcd
    data = data or DEFAULT_DATA
    farm = read_farm(data)
    if farm is None:
        raise Failed(f"no farm in {data} (no farm.json): start one with 'sipfarm up --data {data}'")
    if not farm_running(data):
        raise Failed(f"the farm in {data} is not running: start it with 'sipfarm up --data {data}'")
    try:
        return _etcd(str(farm.get("etcd")))
    except argparse.ArgumentTypeError as exc:
        raise Failed(f"{data / 'farm.json'}: {exc}") from None


def read_view(etcd: tuple[str, int]) -> View:
    """The farm's view as etcd holds it now: one read of the membership prefix."""
    try:
        return asyncio.run(asyncio.wait_for(_read_members(etcd), ETCD_TIMEOUT))
    except TimeoutError:
        raise Failed(
            f"cannot reach etcd at {_text(etcd)}: no answer in {ETCD_TIMEOUT:.0f} s"
        ) from None
    except Exception as exc:  # aetcd's errors (gRPC) have no common base worth naming
        raise Failed(f"cannot reach etcd at {_text(etcd)}: {exc or type(exc).__name__}") from None


async def _read_members(etcd: tuple[str, int]) -> View:
    client = aetcd.Client(host=etcd[0], port=etcd[1], timeout=ETCD_TIMEOUT)
    try:
        snapshot = await client.get_prefix(PREFIX)
    finally:
        await client.close()
    members: dict[str, MemberInfo] = {}
    for kv in snapshot:
        token = kv.key[len(PREFIX) :].decode("utf-8", "replace")
        try:
            value = msgpack.unpackb(kv.value, raw=False)
            members[token] = decode_member(token, value, kv.create_revision)
        except (ValueError, msgpack.UnpackException) as exc:
            print(f"sipfarm: member {token} left out, unreadable: {exc}", file=sys.stderr)
    return View(snapshot.header.revision, members)


def ring_shares(ring: Ring, sample: int = SHARE_SAMPLE) -> dict[str, float]:
    """Each member's fraction of a fixed sample of Call-IDs, as the ring places them."""
    owners = Counter(ring.owner(f"{i:08x}@share.sipfarm") for i in range(sample))
    return {m: owners[m] / sample for m in ring.members}


def farm_status(view: View, etcd: tuple[str, int]) -> dict[str, Any]:
    """What ``sipfarm status`` shows (and prints as JSON with ``--json``)."""
    shares = ring_shares(view.ring())
    return {
        "etcd": _text(etcd),
        "revision": view.revision,
        "controller": view.controller,
        "backup": view.backup,
        "members": [
            {
                "token": m.token,
                "state": m.state.value,
                "sip": _text(m.sip),
                "cluster": _text(m.address),
                "http": _text(m.http),
                "roles": sorted(m.roles),
                "share": shares.get(m.token),
            }
            for m in sorted(view.members.values(), key=lambda m: _natural(m.token))
        ],
    }


def format_status(status: dict[str, Any]) -> str:
    """The farm's view as a table, with the view number, controller and backup above it."""
    members = status["members"]
    ready = sum(1 for m in members if m["state"] == "ready")
    head = (
        f"view {status['revision']} on etcd {status['etcd']}: {len(members)} members, "
        f"{ready} ready; controller {status['controller'] or '-'}, "
        f"backup {status['backup'] or '-'}"
    )
    rows: list[list[str]] = [["TOKEN", "STATE", "SIP", "CLUSTER", "ADMIN", "ROLES", "SHARE"]]
    for m in members:
        share = "-" if m["share"] is None else f"{m['share']:.1%}"
        cells = [m["token"], m["state"], m["sip"], m["cluster"], m["http"], ",".join(m["roles"])]
        rows.append([c or "-" for c in cells] + [share])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join([head, *lines]) + "\n"


def _natural(token: str) -> list[int | str]:
    """m2 before m10."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", token)]


def _text(address: tuple[str, int] | None) -> str | None:
    return None if address is None else address_text(address)


def _run_status(args: argparse.Namespace) -> int:
    if args.http is not None:
        return _admin("status", args.http)
    etcd = _farm_etcd(args.data, args.etcd)
    status = farm_status(read_view(etcd), etcd)
    print(
        json.dumps(status, indent=2) if args.json else format_status(status),
        end="\n" if args.json else "",
    )
    return 0


def _run_member_action(args: argparse.Namespace) -> int:
    """``member not-ready|ready TOKEN``: ask that member's admin endpoint, found in etcd."""
    token = args.member_token
    view = read_view(_farm_etcd(args.data, args.etcd))
    member = view.members.get(token)
    if member is None:
        known = ", ".join(sorted(view.members, key=_natural)) or "none"
        raise Failed(f"no member {token} in the farm (members: {known})")
    if member.http is None:
        raise Failed(f"member {token} has no admin endpoint (it was started without --http)")
    host, port = member.http
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    return _admin(args.action, (host, port))


def _member_config(args: argparse.Namespace) -> MemberConfig:
    host, port = args.sip
    config = MemberConfig(
        host=host,
        port=port,
        data=args.data,
        trusted=tuple(args.trusted),
        digest_algorithms=args.digest_algorithms,
        advertise=_advertised(host, port, args.advertise),
        http=args.http,
        etcd=args.etcd,
        cluster=args.cluster,
        roles=args.roles,
        sync=args.sync,
        steering=args.steering,
    )
    if args.token:
        config = dataclasses.replace(config, token=args.token)
    return config


def _check_member(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What argparse cannot say alone: which options go with running a member, which with
    an action on one."""
    if args.action is not None:
        if args.member_token is None:
            parser.error(f"member {args.action} needs the member's TOKEN")
        if args.sip is not None:
            parser.error(
                f"--sip runs a member; 'member {args.action}' takes TOKEN and --data or --etcd"
            )
        if args.data is not None and args.etcd is not None:
            parser.error("give --data or --etcd, not both")
        return
    if args.member_token is not None:
        parser.error(f"unexpected argument {args.member_token!r} (a member runs with --sip)")
    if args.sip is None:
        parser.error("the following arguments are required: --sip")
    if args.etcd is not None and args.cluster is None:
        parser.error("--cluster HOST:PORT is required with --etcd")


def _run_up(args: argparse.Namespace) -> int:
    setup_logging(args.debug)
    host, port = args.sip
    config = FarmConfig(
        sip=args.sip,
        members=args.members,
        data=args.data.resolve(),
        advertise=_advertised(host, port, args.advertise),
        debug=args.debug,
        trusted=tuple(args.trusted),
        sync=args.sync,
        steering=args.steering,
    )
    try:
        return run_farm(config)
    except KeyboardInterrupt:  # a signal before the farm was up: it is stopped all the same
        return 0
    except FarmBusy as exc:
        raise Failed(str(exc)) from None
    except EtcdError as exc:
        raise Failed(f"etcd did not start: {exc}") from None
    except OSError as exc:
        raise Failed(_describe(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "member":
        _check_member(parser, args)
    try:
        return _dispatch(args)
    except Failed as exc:
        print(f"sipfarm: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "member":
        if args.action is not None:
            return _run_member_action(args)
        return _run_member(_member_config(args), args.debug)
    if args.command == "up":
        return _run_up(args)
    if args.command == "status":
        return _run_status(args)
    if args.command == "admin":
        return _admin_password(args)
    if args.command in ("domain", "account"):
        return _run_store(args)
    if args.command in ("not-ready", "ready"):
        return _admin(args.command, args.http)
    raise AssertionError(args.command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
