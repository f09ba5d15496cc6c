"""Parser fuzz at volume: input is parsed, or raises SipError, never anything else.

    .venv/bin/python loadtest/fuzz_parser.py [--count 1000000] [--seed 1] [--workers 2]
                                             [--framer 0.1] [--batch 5000]

Inputs are mutations of the RFC 4475 / RFC 5118 corpus (tests/data/rfc*/*.dat): byte
flips, insertions of grammar-relevant fragments, deletions, truncations, duplicated and
swapped lines, CRLF -> LF, two messages spliced, a header repeated many times, huge
values; a few are plain random bytes. Each goes to ``parse()`` and, for a request, to
``validate_request()``. A fraction (--framer) is also fed as a stream to ``StreamFramer``
in random chunk sizes, and every message it cuts out goes to ``parse()``.

Batches are seeded from (--seed, batch number), so a run is reproducible. Prints
inputs/second and the outcomes counted by status; on the first input that raises anything
but SipError (or a SipError whose status is not 4xx-6xx) it prints the input's repr and
the traceback and exits 1. tests/unit/sip/test_fuzz.py checks the same invariant with
Hypothesis; this runner is for volume.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sipfarm.sip import Request, SipError, parse, validate_request
from sipfarm.sip.framer import StreamFramer

CORPUS_DIR = Path(__file__).resolve().parent.parent / "tests" / "data"

# fmt: off
SPICE = [
    b"\r\n", b"\n", b"\r", b" ", b"\t", b"\r\n ", b"\r\n\r\n", b":", b";", b",", b"=", b"<",
    b">", b'"', b"\\", b"%", b"%0", b"%00", b"%zz", b"[", b"]", b"@", b"?", b"&", b"/", b"\x00",
    b"\x7f", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xe2\x80\xa8", b"sip:", b"sips:", b"tel:",
    b"urn:", b";branch=", b";branch=z9hG4bK", b";tag=", b";received=", b";rport", b";maddr=",
    b";lr", b"[::1]", b"[::ffff:1.2.3.4]", b"[2001:db8:::1]", b"[1:2:3:4:5:6:7:8:9]", b":0",
    b":65536", b":99999", b"256.1.1.1", b"4294967296", b"2147483648", b"-1", b"0x10",
    b"Content-Length: 1\r\n", b"l: 99999\r\n", b"Content-Length: -1\r\n",
    b"Via: SIP/2.0/UDP h\r\n", b"v: SIP/2.0/TCP [::1]:5060;branch=z9hG4bKx\r\n",
    b"CSeq: 1 BYE\r\n", b"Max-Forwards: 0\r\n", b"Require: x, y\r\n", b"Contact: *\r\n",
    b"m: <sip:a@b>;expires=0, *\r\n", b"SIP/2.0 ", b"SIP/3.0", b"INVITE ", b"ACK ",
]
# fmt: on

#: Run lengths for huge values; the longest fill a 64 KiB datagram.
HUGE_SIZES = (256, 4096, 16000, 60000)


@dataclass
class Tally:
    """What one batch (or the whole run) saw."""

    inputs: int = 0
    requests: int = 0
    responses: int = 0
    errors: Counter[int] = field(default_factory=Counter)
    streams: int = 0
    framed: int = 0
    framer_errors: Counter[int] = field(default_factory=Counter)
    failure: str | None = None

    def add(self, other: Tally) -> None:
        self.inputs += other.inputs
        self.requests += other.requests
        self.responses += other.responses
        self.errors.update(other.errors)
        self.streams += other.streams
        self.framed += other.framed
        self.framer_errors.update(other.framer_errors)
        if self.failure is None:
            self.failure = other.failure


class Offending(Exception):
    """An input broke the invariant; the message says which and how."""


# ----------------------------------------------------------------------------- mutators


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n")


def flip(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    i = rng.randrange(len(data))
    return data[:i] + bytes([rng.randrange(256)]) + data[i + 1 :]


def insert(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    i = rng.randrange(len(data) + 1)
    chunk = rng.choice(SPICE) if rng.random() < 0.8 else rng.randbytes(rng.randint(1, 8))
    return data[:i] + chunk + data[i:]


def delete(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    i = rng.randrange(len(data))
    return data[:i] + data[i + rng.randint(1, 32) :]


def truncate(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    return data[: rng.randrange(len(data))]


def duplicate_line(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    lines = _lines(data)
    i = rng.randrange(len(lines))
    return b"\r\n".join([*lines[: i + 1], lines[i], *lines[i + 1 :]])


def repeat_header(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    """One header line repeated up to a few hundred times."""
    lines = _lines(data)
    end = lines.index(b"") if b"" in lines else len(lines)
    if end < 2:
        return data
    i = rng.randrange(1, end)
    return b"\r\n".join([*lines[:i], *[lines[i]] * rng.choice((2, 3, 10, 300)), *lines[i:]])


def swap_lines(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    lines = _lines(data)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return b"\r\n".join(lines)


def crlf_to_lf(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    if rng.random() < 0.5:
        return data.replace(b"\r\n", b"\n")
    i = data.find(b"\r\n", rng.randrange(len(data) + 1))
    return data if i < 0 else data[:i] + data[i + 1 :]


def splice(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    """The head of this message on the tail of another, cut at a byte or at a line."""
    other = rng.choice(corpus)
    if rng.random() < 0.5:
        return data[: rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1) :]
    a, b = _lines(data), _lines(other)
    return b"\r\n".join(a[: rng.randrange(len(a) + 1)] + b[rng.randrange(len(b) + 1) :])


def huge_value(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    """A very long run of one character, or a very long number, inside a line."""
    i = rng.randrange(len(data) + 1)
    n = rng.choice(HUGE_SIZES)
    if rng.random() < 0.3:
        return data[:i] + b"9" * min(n, 400) + data[i:]
    run = rng.choice((b"a", b" ", b";", b",", b"%41", b"\\", b"\r\n "))
    return data[:i] + run * (n // len(run)) + data[i:]


MUTATORS = (
    flip,
    insert,
    delete,
    truncate,
    duplicate_line,
    repeat_header,
    swap_lines,
    crlf_to_lf,
    splice,
    huge_value,
)


def make_input(rng: random.Random, corpus: list[bytes]) -> bytes:
    if rng.random() < 0.02:
        return rng.randbytes(rng.randrange(2048))
    data = rng.choice(corpus)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 5, 8))):
        if not data:
            break
        data = rng.choice(MUTATORS)(rng, data, corpus)
    return data


# ---------------------------------------------------------------------------- invariant


def check(data: bytes, tally: Tally) -> None:
    """Parse (and validate a request) ``data``; count the outcome or raise Offending."""
    try:
        msg = parse(data)
        if isinstance(msg, Request):
            validate_request(msg)
    except SipError as exc:
        if not isinstance(exc.status, int) or not 400 <= exc.status <= 699:
            raise Offending(f"SipError with status {exc.status!r}: {exc!r}") from exc
        tally.errors[exc.status] += 1
        return
    except Exception as exc:
        raise Offending(f"parse/validate_request raised {type(exc).__name__}") from exc
    try:  # parse checked their syntax: the typed views read on demand never raise
        _ = (msg.via, msg.from_, msg.to, msg.contact, msg.route, msg.record_route)
    except Exception as exc:
        raise Offending(f"typed view raised {type(exc).__name__} after parse accepted") from exc
    if isinstance(msg, Request):
        tally.requests += 1
    else:
        tally.responses += 1


def check_stream(rng: random.Random, data: bytes, tally: Tally) -> None:
    """Feed ``data`` (framed with pings between two copies) in random chunks."""
    stream = data + rng.choice((b"", b"\r\n", b"\r\n\r\n")) + data
    framer = StreamFramer()
    tally.streams += 1
    pos = 0
    try:
        while pos < len(stream):
            size = rng.choice((1, 1, 2, 3, 7, 64, 512, 4096))
            for msg in framer.feed(stream[pos : pos + size]):
                tally.framed += 1
                check(msg, tally)
            pos += size
    except SipError as exc:
        if exc.status not in (400, 513):
            raise Offending(f"StreamFramer raised status {exc.status!r}") from exc
        tally.framer_errors[exc.status] += 1
    except Offending:
        raise
    except Exception as exc:
        raise Offending(f"StreamFramer raised {type(exc).__name__}") from exc


def run_batch(job: tuple[int, int, int, float]) -> Tally:
    """One batch of inputs, seeded from (seed, batch number)."""
    seed, batch, count, framer_share = job
    rng = random.Random(f"{seed}/{batch}")
    tally = Tally()
    for _ in range(count):
        data = make_input(rng, CORPUS)
        tally.inputs += 1
        try:
            check(data, tally)
            if data and rng.random() < framer_share:
                check_stream(rng, data, tally)
        except Offending as exc:
            tally.failure = f"{exc}\ninput (seed {seed}, batch {batch}):\n{data!r}\n\n" + "".join(
                traceback.format_exception(exc.__cause__ or exc)
            )
            break
    return tally


def load_corpus() -> list[bytes]:
    return [p.read_bytes() for p in sorted(CORPUS_DIR.glob("rfc*/*.dat"))]


CORPUS = load_corpus()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="inputs (1000000)")
    parser.add_argument("--seed", type=int, default=1, help="run seed (1)")
    parser.add_argument("--workers", type=int, default=2, help="processes (2)")
    parser.add_argument(
        "--framer",
        type=float,
        default=0.1,
        help="share of inputs also fed through StreamFramer (0.1)",
    )
    parser.add_argument("--batch", type=int, default=5000, help="inputs per batch (5000)")
    args = parser.parse_args(argv)
    if not CORPUS:
        print(f"fuzz_parser: no corpus in {CORPUS_DIR}", file=sys.stderr)
        return 2

    jobs = []
    left = args.count
    while left > 0:
        n = min(args.batch, left)
        jobs.append((args.seed, len(jobs), n, args.framer))
        left -= n

    total = Tally()
    started = time.perf_counter()
    last_report = started
    with multiprocessing.Pool(args.workers) as pool:
        for tally in pool.imap_unordered(run_batch, jobs):
            total.add(tally)
            if total.failure is not None:
                pool.terminate()
                break
            now = time.perf_counter()
            if now - last_report >= 5:
                last_report = now
                rate = total.inputs / (now - started)
                print(f"  {total.inputs:>10} inputs, {rate:,.0f}/s", file=sys.stderr)
    elapsed = time.perf_counter() - started

    print(
        f"fuzz_parser: {total.inputs} inputs, seed {args.seed}, {args.workers} workers, "
        f"{elapsed:.1f} s, {total.inputs / elapsed:,.0f} inputs/s"
    )
    parsed = total.requests + total.responses
    print(
        f"  outcomes of {parsed + sum(total.errors.values())} parses "
        f"(the inputs, and the {total.framed} messages the framer cut out of streams):"
    )
    print(
        f"  parsed:   {parsed} (requests {total.requests} that also passed validate_request, "
        f"responses {total.responses})"
    )
    print(f"  SipError: {sum(total.errors.values())}")
    for status, n in sorted(total.errors.items()):
        print(f"    {status}: {n}")
    print(
        f"  framer:   {total.streams} streams, {total.framed} messages framed, errors "
        + (", ".join(f"{s}: {n}" for s, n in sorted(total.framer_errors.items())) or "none")
    )
    if total.failure is not None:
        print("\nFAIL: input broke the invariant (parsed, or SipError, never anything else)")
        print(total.failure)
        return 1
    print("OK: every input was parsed or raised SipError")
    return 0


if __name__ == "__main__":
    sys.exit(main())
