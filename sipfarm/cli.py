"""The ``sipfarm`` command (the CLI edge: options are checked here, once)."""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import ipaddress
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import uvloop

from mail import names
from mail.errors import (
    AccountExists,
    AccountStoreError,
    BadName,
    DomainExists,
    NoSuchAccount,
    NoSuchDomain,
)
from mail.store import AccountStore

from . import __version__
from .log import setup as setup_logging
from .node import Member, MemberConfig
from .ownership import is_token

EXIT_STORE = 1
EXIT_USAGE = 2


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


def _token(text: str) -> str:
    token = text.lower()
    if not is_token(token):
        raise argparse.ArgumentTypeError(f"a token is 1-16 ASCII letters and digits: {text!r}")
    return token


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
        default=Path("data"),
        metavar="DIR",
        help="storage directory (default ./data)",
    )


def _add_store_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    d = sub.add_parser("domain", help="add, list and remove domains")
    dsub = d.add_subparsers(dest="action", required=True, parser_class=_Parser)
    for action, text in (("add", "add a domain"), ("remove", "remove a domain and its accounts")):
        a = dsub.add_parser(action, help=text)
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


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sipfarm", description="A SIP Farm signaling server.")
    p.add_argument("--version", action="version", version=f"sipfarm {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    m = sub.add_parser("member", help="run one member in the foreground")
    m.add_argument(
        "--sip",
        type=_address,
        required=True,
        metavar="HOST:PORT",
        help="UDP and TCP address to serve SIP on",
    )
    m.add_argument("--data", type=Path, metavar="DIR", help="storage directory")
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
    m.add_argument("--debug", action="store_true", help="log every packet")

    for name, text in (
        ("not-ready", "drain a member: health probes get 503, work under way finishes"),
        ("ready", "put a drained member back into rotation"),
        ("status", "a member's state, whether it is idle, and its counters"),
    ):
        c = sub.add_parser(name, help=text)
        c.add_argument(
            "--http", type=_address, required=True, metavar="HOST:PORT", help="its admin endpoint"
        )

    u = sub.add_parser("up", help="start the one-host farm on the embedded default")
    u.add_argument(
        "--sip",
        type=_address,
        default=("0.0.0.0", 5060),
        metavar="HOST:PORT",
        help="SIP address (default 0.0.0.0:5060)",
    )
    _add_data(u)
    u.add_argument(
        "--advertise",
        type=_address,
        metavar="HOST:PORT",
        help="address put in Via and Record-Route (default: this host's)",
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
    conn = http.client.HTTPConnection(address[0], address[1], timeout=5)
    try:
        conn.request(method, path)
        answer = conn.getresponse()
        body = answer.read().decode("utf-8", "replace")
    except OSError as exc:
        print(f"sipfarm: cannot reach {address[0]}:{address[1]}: {exc}", file=sys.stderr)
        return EXIT_STORE
    finally:
        conn.close()
    print(body, end="")
    return 0 if answer.status == 200 else EXIT_STORE


def _run_store(args: argparse.Namespace) -> int:
    """``domain`` and ``account``: one line (or the list) on stdout, one error line on stderr."""
    store = AccountStore(args.data)
    try:
        for line in _store_action(store, args):
            print(line)
    except BadName as exc:
        print(f"sipfarm: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (AccountStoreError, OSError) as exc:
        print(f"sipfarm: {_describe(exc)}", file=sys.stderr)
        return EXIT_STORE
    return 0


def _store_action(store: AccountStore, args: argparse.Namespace) -> list[str]:
    what = (args.command, args.action)
    if what == ("domain", "add"):
        store.add_domain(args.domain)
        return [f"domain {args.domain} added"]
    if what == ("domain", "remove"):
        store.remove_domain(args.domain)
        return [f"domain {args.domain} removed"]
    if what == ("domain", "list"):
        return store.domains()
    if what == ("account", "list"):
        domains = [args.domain] if args.domain else store.domains()
        return [f"{user}@{domain}" for domain in domains for user in store.accounts(domain)]
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "member":
        host, port = args.sip
        config = MemberConfig(
            host=host,
            port=port,
            data=args.data,
            trusted=tuple(args.trusted),
            digest_algorithms=args.digest_algorithms,
            advertise=_advertised(host, port, args.advertise),
            http=args.http,
        )
        if args.token:
            config = dataclasses.replace(config, token=args.token)
        return _run_member(config, args.debug)
    if args.command == "up":
        # The one-host embedded default.  Until the farm issue brings etcd and one
        # member per core, it is a single member on the host's SIP port.
        host, port = args.sip
        config = MemberConfig(
            host=host, port=port, data=args.data, advertise=_advertised(host, port, args.advertise)
        )
        return _run_member(config, args.debug)
    if args.command in ("domain", "account"):
        return _run_store(args)
    if args.command in ("not-ready", "ready", "status"):
        return _admin(args.command, args.http)
    raise AssertionError(args.command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
