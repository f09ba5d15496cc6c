"""The ``sipfarm`` command (the CLI edge: options are checked here, once)."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import uvloop

from . import __version__
from .log import setup as setup_logging
from .node import Member, MemberConfig

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
    m.add_argument("--token", help="member token (default: random)")
    m.add_argument("--debug", action="store_true", help="log every packet")

    u = sub.add_parser("up", help="start the one-host farm on the embedded default")
    u.add_argument(
        "--sip",
        type=_address,
        default=("0.0.0.0", 5060),
        metavar="HOST:PORT",
        help="SIP address (default 0.0.0.0:5060)",
    )
    u.add_argument(
        "--data",
        type=Path,
        default=Path("data"),
        metavar="DIR",
        help="storage directory (default ./data)",
    )
    u.add_argument("--debug", action="store_true", help="log every packet")
    return p


def _run_member(host: str, port: int, data: Path | None, token: str | None, debug: bool) -> int:
    setup_logging(debug)
    config = MemberConfig(host=host, port=port, data=data)
    if token:
        config = MemberConfig(host=host, port=port, data=data, token=token)
    if data is not None:
        data.mkdir(parents=True, exist_ok=True)
    try:
        uvloop.run(Member(config).run())
    except OSError as exc:
        print(f"sipfarm: cannot serve on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "member":
        host, port = args.sip
        return _run_member(host, port, args.data, args.token, args.debug)
    if args.command == "up":
        # The one-host embedded default.  Until the farm issue brings etcd and one
        # member per core, it is a single member on the host's SIP port.
        host, port = args.sip
        return _run_member(host, port, args.data, None, args.debug)
    raise AssertionError(args.command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
