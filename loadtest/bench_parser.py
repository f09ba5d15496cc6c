"""Parser micro-benchmark: sipfarm.sip against the PyPI package sipmessage.

    .venv/bin/python loadtest/bench_parser.py [--repeat 7] [--min-time 0.2]

Two messages, the same bytes for both libraries: a REGISTER with Authorization (RFC
3665 §2.1, F3) and an INVITE with an SDP body (RFC 3665 §3.1, F1).  For each:

- "parse + 10 fields": parse, then read method, Request-URI host, top Via branch,
  From tag, To URI, Call-ID, CSeq number, CSeq method, Contact URI, Max-Forwards;
- "peek" (sipfarm only): ``sipfarm.sip.peek(data)`` and its routing fields, the farm
  router's fast path.

Timing is timeit's: the loop count is picked so one run takes at least --min-time,
then the best of --repeat runs is reported in microseconds per operation.  Before
timing, each operation's fields are checked against the values in the message.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import timeit
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sipmessage

RESULTS = Path(__file__).resolve().parent / "results"


def _message(head: str, body: str = "") -> bytes:
    """CRLF line ends and an exact Content-Length."""
    body_bytes = body.replace("\n", "\r\n").encode()
    head = head.replace("\n", "\r\n").format(length=len(body_bytes))
    return head.encode() + b"\r\n" + body_bytes


# RFC 3665 §2.1 F3, the REGISTER with credentials.  The RFC folds Authorization over
# four lines; it is unfolded here because sipmessage does not join folded lines.
REGISTER = _message(
    "REGISTER sips:ss2.biloxi.example.com SIP/2.0\n"
    "Via: SIP/2.0/TLS client.biloxi.example.com:5061;branch=z9hG4bKnashd92\n"
    "Max-Forwards: 70\n"
    "From: Bob <sips:bob@biloxi.example.com>;tag=ja743ks76zlflH\n"
    "To: Bob <sips:bob@biloxi.example.com>\n"
    "Call-ID: 1j9FpLxk3uxtm8tn@biloxi.example.com\n"
    "CSeq: 2 REGISTER\n"
    "Contact: <sips:bob@client.biloxi.example.com>\n"
    'Authorization: Digest username="bob", realm="atlanta.example.com", '
    'nonce="ea9c8e88df84f1cec4341ae6cbe5a359", opaque="", '
    'uri="sips:ss2.biloxi.example.com", response="dfe56131d1958046689d83306477ecc"\n'
    "Content-Length: {length}\n"
)

# RFC 3665 §3.1 F1, the INVITE with its SDP offer.
INVITE = _message(
    "INVITE sip:bob@biloxi.example.com SIP/2.0\n"
    "Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\n"
    "Max-Forwards: 70\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
    "To: Bob <sip:bob@biloxi.example.com>\n"
    "Call-ID: 3848276298220188511@atlanta.example.com\n"
    "CSeq: 1 INVITE\n"
    "Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\n"
    "Content-Type: application/sdp\n"
    "Content-Length: {length}\n",
    "v=0\n"
    "o=alice 2890844526 2890844526 IN IP4 client.atlanta.example.com\n"
    "s=-\n"
    "c=IN IP4 192.0.2.101\n"
    "t=0 0\n"
    "m=audio 49172 RTP/AVP 0\n"
    "a=rtpmap:0 PCMU/8000\n",
)

MESSAGES = {"REGISTER": REGISTER, "INVITE": INVITE}

#: The ten fields, in order, as they appear in each message.
EXPECTED: dict[str, tuple[object, ...]] = {
    "REGISTER": (
        "REGISTER", "ss2.biloxi.example.com", "z9hG4bKnashd92", "ja743ks76zlflH",
        "sips:bob@biloxi.example.com", "1j9FpLxk3uxtm8tn@biloxi.example.com", 2, "REGISTER",
        "sips:bob@client.biloxi.example.com", 70,
    ),
    "INVITE": (
        "INVITE", "biloxi.example.com", "z9hG4bK74bf9", "9fxced76sl",
        "sip:bob@biloxi.example.com", "3848276298220188511@atlanta.example.com", 1, "INVITE",
        "sip:alice@client.atlanta.example.com;transport=tcp", 70,
    ),
}  # fmt: skip


def sipmessage_fields(data: bytes) -> tuple[object, ...]:
    """Parse with sipmessage and read the ten fields (its accessors parse lazily)."""
    msg = sipmessage.Message.parse(data)
    assert isinstance(msg, sipmessage.Request)
    cseq = msg.cseq
    return (
        msg.method,
        msg.uri.host,
        msg.via[0].parameters["branch"],
        msg.from_address.parameters["tag"],
        str(msg.to_address.uri),
        msg.call_id,
        cseq.sequence,
        cseq.method,
        str(msg.contact[0].uri),
        msg.max_forwards,
    )


def sipfarm_operations() -> tuple[dict[str, Callable[[bytes], object]], str | None]:
    """sipfarm's operations by name, and why any are missing (None when all are there)."""
    try:
        sip = importlib.import_module("sipfarm.sip")
    except ImportError as exc:
        return {}, f"sipfarm.sip does not import: {exc}"
    operations: dict[str, Callable[[bytes], object]] = {}
    missing = [name for name in ("parse", "peek") if not hasattr(sip, name)]
    if hasattr(sip, "parse"):
        parse = sip.parse

        def parse_fields(data: bytes) -> tuple[object, ...]:
            msg = parse(data)
            cseq = msg.cseq
            return (
                msg.method,
                msg.uri.host,
                msg.via[0].branch,
                msg.from_.tag,
                str(msg.to.uri),
                msg.call_id,
                cseq.seq,
                cseq.method,
                str(msg.contact[0].uri),
                msg.max_forwards,
            )

        operations["parse + 10 fields"] = parse_fields
    if hasattr(sip, "peek"):
        peek = sip.peek

        def peek_fields(data: bytes) -> tuple[object, ...]:
            p = peek(data)
            return (
                p.branch, p.sent_by, p.rport, p.call_id, p.cseq_seq, p.cseq_method,
                p.to_tag, p.route, p.request_uri,
            )  # fmt: skip

        operations["peek"] = peek_fields
    why = f"sipfarm.sip has no {' or '.join(missing)} yet" if missing else None
    return operations, why


def _text(value: object) -> object:
    # peek may hand back bytes (the fast path need not decode): compare as text.
    return value.decode() if isinstance(value, bytes) else value


def check(library: str, operation: str, message: str, result: Any) -> str | None:
    """A note when ``result`` does not hold the message's values, else None."""
    fields = EXPECTED[message]
    got: dict[object, object]
    want: dict[object, object]
    if operation == "peek":
        got = {"branch": result[0], "call_id": result[3], "cseq_seq": result[4]}
        want = {"branch": fields[2], "call_id": fields[5], "cseq_seq": fields[6]}
    else:
        got, want = dict(enumerate(result)), dict(enumerate(fields))
    wrong = {k: (got[k], v) for k, v in want.items() if _text(got[k]) != v}
    return f"{library} {operation} {message}: got/want {wrong}" if wrong else None


@dataclass(frozen=True, slots=True)
class Timing:
    message: str
    library: str
    operation: str
    us_per_op: float
    loops: int
    repeat: int


def best_time(
    func: Callable[[bytes], object], data: bytes, repeat: int, min_time: float
) -> tuple[float, int]:
    """timeit's way: double the loops until a run takes ``min_time``, then the best of
    ``repeat`` runs; returns (microseconds per operation, loops per run)."""
    timer = timeit.Timer(lambda: func(data))
    loops = 1
    while timer.timeit(loops) < min_time:
        loops *= 2
    best = min(timer.repeat(repeat=repeat, number=loops)) / loops
    return best * 1e6, loops


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs; the best counts (7)")
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per run (0.2)")
    parser.add_argument("--no-json", action="store_true", help="do not write loadtest/results")
    args = parser.parse_args(argv)

    sipfarm_ops, sipfarm_missing = sipfarm_operations()
    libraries: dict[str, dict[str, Callable[[bytes], object]]] = {
        "sipmessage": {"parse + 10 fields": sipmessage_fields},
        "sipfarm": sipfarm_ops,
    }
    timings: list[Timing] = []
    notes: list[str] = []
    for message, data in MESSAGES.items():
        for library, operations in libraries.items():
            for operation, func in operations.items():
                try:
                    note = check(library, operation, message, func(data))
                except Exception as exc:  # a library that cannot parse is reported, not fatal
                    notes.append(f"{library} {operation} {message}: {type(exc).__name__}: {exc}")
                    continue
                if note:
                    notes.append(note)
                us, loops = best_time(func, data, args.repeat, args.min_time)
                timings.append(Timing(message, library, operation, us, loops, args.repeat))

    print(f"{'message':<9} {'library':<11} {'operation':<18} {'us/op':>8}")
    for t in timings:
        print(f"{t.message:<9} {t.library:<11} {t.operation:<18} {t.us_per_op:>8.2f}")
    if sipfarm_missing:
        print(f"sipfarm: {sipfarm_missing}")
    for note in notes:
        print(f"check: {note}")
    if not args.no_json:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"parser-{time.strftime('%Y%m%dT%H%M%S')}.json"
        document = {
            "bench": "parser",
            "python": sys.version.split()[0],
            "sipmessage": sipmessage.__version__,
            "sipfarm_missing": sipfarm_missing,
            "notes": notes,
            "timings": [asdict(t) for t in timings],
        }
        path.write_text(json.dumps(document, indent=2) + "\n")
        print(f"results: {path}")
    return 1 if notes else 0


if __name__ == "__main__":
    sys.exit(main())
