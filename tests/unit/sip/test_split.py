"""The C header split, ``sipfarm.sip._speedups.split_headers``, against the Python split.

``parse()`` splits the header block in C when the extension is built; the Python path
(``message._parse_headers`` on the decoded lines) stays the reference. On literal blocks,
the RFC 4475 / RFC 5118 corpus, its mutations (the mutators of ``loadtest/fuzz_parser.py``),
generated header blocks and arbitrary bytes, the C split either hands the block back
(None) or returns exactly what the reference builds: the start line, the fields
(``HeaderField`` instances of three ``str``, raw lines included) and the index. It hands
back exactly the blocks the reference folds, splits on bare LF or refuses, and ``parse()``
gives the same message or the same SipError with and without it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st
from sipcorpus import CORPUS, MESSAGES, mutated

import sipfarm.sip.message as MESSAGE
from sipfarm.sip import SipError, parse
from sipfarm.sip.headers import COMPACT, SINGLE, HeaderField

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Split = tuple[str, tuple[HeaderField, ...], dict[str, list[int]]]
CSplit = Callable[[bytes], Split | None]

#: The C split parse() calls, ``_speedups.split_headers``; None where it is not built.
SPLIT_C: Any = vars(MESSAGE)["_split_c"]


@pytest.fixture(scope="module")
def c_split() -> CSplit:
    """The C split with parse()'s tables; skipped where it is not built, fails in CI."""
    split = SPLIT_C
    if split is None:
        if os.environ.get("CI"):
            pytest.fail("sipfarm.sip._speedups is not built in CI (install.sh builds it)")
        pytest.skip("sipfarm.sip._speedups is not built (no C compiler at install time)")

    def c(head: bytes) -> Split | None:
        got: Split | None = split(head, COMPACT, SINGLE, HeaderField)
        return got

    return c


def python_split(head: bytes) -> Split | SipError:
    """parse()'s Python path over the header block: the reference, or its error."""
    text = head.decode("utf-8", "surrogateescape")
    lines = text.split("\r\n")
    if text.count("\n") != len(lines) - 1:
        lines = [x.rstrip("\r") for x in text.split("\n")]
    try:
        headers = MESSAGE._parse_headers(lines[1:])
    except SipError as exc:
        return exc
    return lines[0], tuple(headers), headers._idx()


_FOLD_OR_BARE_LF = re.compile(rb"\n[ \t]|(?<!\r)\n")


def c_may_split(head: bytes) -> bool:
    """No folded line and no bare LF: then the C split answers unless the reference
    refuses the block."""
    return _FOLD_OR_BARE_LF.search(head) is None


def typed(split: Split) -> tuple[Any, ...]:
    """A split with the type of every part, so that equality also compares types."""
    start, fields, index = split
    return (
        (type(start), start),
        tuple((type(f), *((type(x), x) for x in f)) for f in fields),
        type(fields),
        {(type(k), k): (type(v), [(type(i), i) for i in v]) for k, v in index.items()},
    )


def assert_same_split(c_split: CSplit, head: bytes) -> None:
    got = c_split(head)
    want = python_split(head)
    assert (got is None) == (not c_may_split(head) or isinstance(want, SipError))
    if got is not None:
        assert not isinstance(want, SipError)
        assert type(got) is tuple and len(got) == 3
        assert all(type(f) is HeaderField for f in got[1])
        assert typed(got) == typed(want)


@contextmanager
def python_only() -> Iterator[None]:
    """parse() without the C split (what it does where the extension is not built)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MESSAGE, "_split_c", None)
        yield


def outcome(data: bytes) -> tuple[Any, ...]:
    """What parse() makes of ``data``: the message in every part, or the error."""
    try:
        msg = parse(data)
    except SipError as exc:
        return ("error", type(exc), exc.status, exc.reason, exc.headers)
    h = msg.headers
    return (
        "ok",
        type(msg),
        msg.start_line(),
        msg.version,
        tuple((type(f), *((type(x), x) for x in f)) for f in h),
        h._idx(),
        msg.body,
        msg.raw,
        bytes(msg),
    )


def assert_same_parse(data: bytes) -> None:
    got = outcome(data)
    with python_only():
        want = outcome(data)
    assert got == want


def head_of(data: bytes) -> bytes | None:
    """The header block as parse() cuts it, or None when it has none."""
    if data[:2] == b"\r\n":
        data = data.lstrip(b"\r\n")
    try:
        return MESSAGE._split_head(data)[0]
    except SipError:
        return None


# ------------------------------------------------------------------------------- literals


def test_fields_are_header_fields(c_split: CSplit) -> None:
    got = c_split(b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\nVia :  SIP/2.0/UDP h \t")
    assert got == (
        "OPTIONS sip:carol@chicago.example.com SIP/2.0",
        (HeaderField("Via", "SIP/2.0/UDP h", "Via :  SIP/2.0/UDP h \t"),),
        {"via": [0]},
    )
    assert type(got[1][0]) is HeaderField
    assert got[1][0].value == "SIP/2.0/UDP h"


@pytest.mark.parametrize(
    ("lines", "fields", "index"),
    [
        ([], (), {}),
        (["v: a", "V:b"], (("v", "a", "v: a"), ("V", "b", "V:b")), {"via": [0, 1]}),  # §7.3.3
        (["Z: 1", "z:2"], (("Z", "1", "Z: 1"), ("z", "2", "z:2")), {"z": [0, 1]}),  # no form
        (["Call-ID:\t\t"], (("Call-ID", "", "Call-ID:\t\t"),), {"call-id": [0]}),
        (["X-A.b!%*_+`'~: :v:"], (("X-A.b!%*_+`'~", ":v:", "X-A.b!%*_+`'~: :v:"),),
         {"x-a.b!%*_+`'~": [0]}),  # RFC 3261 §25.1 token
        (["Subject: caf\u00e9"], (("Subject", "caf\u00e9", "Subject: caf\u00e9"),),
         {"subject": [0]}),
        (["P: a\rb\r"], (("P", "a\rb\r", "P: a\rb\r"),), {"p": [0]}),  # a lone CR stays
        (["Via: 1", "To: t", "Via: 2"], (("Via", "1", "Via: 1"), ("To", "t", "To: t"),
         ("Via", "2", "Via: 2")), {"via": [0, 2], "to": [1]}),
    ],
)  # fmt: skip
def test_literal_split(
    c_split: CSplit,
    lines: list[str],
    fields: tuple[tuple[str, str, str], ...],
    index: dict[str, list[int]],
) -> None:
    head = "\r\n".join(["INVITE sip:a@b SIP/2.0", *lines]).encode()
    assert c_split(head) == ("INVITE sip:a@b SIP/2.0", fields, index)
    assert_same_split(c_split, head)


def test_undecodable_bytes_survive(c_split: CSplit) -> None:
    head = b"\xffSIP/2.0 200 OK\r\nX: a\xff\xc3\r\nY: \xed\xa0\x80"
    got = c_split(head)
    assert got is not None
    assert got[0] == "\udcffSIP/2.0 200 OK"
    assert got[1] == (("X", "a\udcff\udcc3", "X: a\udcff\udcc3"), ("Y", "\udced\udca0\udc80",
                      "Y: \udced\udca0\udc80"))  # fmt: skip
    assert_same_split(c_split, head)


@pytest.mark.parametrize(
    "head",
    [
        b"INVITE sip:a@b SIP/2.0\r\nVia: a\r\n b",  # folded (RFC 3261 §7.3.1)
        b"INVITE sip:a@b SIP/2.0\r\n\tVia: a",  # folded before the first field
        b"INVITE sip:a@b SIP/2.0\nVia: a",  # bare LF
        b"INVITE sip:a@b SIP/2.0\r\nVia: a\nTo: b",
        b"\nINVITE sip:a@b SIP/2.0",
        b"INVITE sip:a@b SIP/2.0\r\nVia a",  # no colon
        b"INVITE sip:a@b SIP/2.0\r\n: a",  # no name
        b"INVITE sip:a@b SIP/2.0\r\nV\xc3\xada: a",  # not a token
        b"INVITE sip:a@b SIP/2.0\r\nVia@: a",
        b"INVITE sip:a@b SIP/2.0\r\nVia\r: a",
        b"INVITE sip:a@b SIP/2.0\r\n\r\nVia: a",  # an empty line inside
        b"INVITE sip:a@b SIP/2.0\r\nCSeq: 1 A\r\ncseq: 2 A",  # a second SINGLE header
        b"INVITE sip:a@b SIP/2.0\r\nl: 0\r\nContent-Length: 0",  # l is Content-Length
    ],
)
def test_hands_back(c_split: CSplit, head: bytes) -> None:
    assert c_split(head) is None
    assert_same_split(c_split, head)


def test_other_types(c_split: CSplit) -> None:
    split = SPLIT_C
    assert split(bytearray(b"A\r\nG: c"), COMPACT, SINGLE, HeaderField) is None
    assert split("A\r\nG: c", COMPACT, SINGLE, HeaderField) is None
    assert split(b"A\r\nG: c", COMPACT, SINGLE, tuple) == ("A", (("G", "c", "G: c"),), {"g": [0]})
    for args in [
        (b"A", COMPACT, SINGLE),
        (b"A", list(COMPACT), SINGLE, HeaderField),
        (b"A", COMPACT, list(SINGLE), HeaderField),
        (b"A", COMPACT, SINGLE, list),
        (b"A", COMPACT, SINGLE, HeaderField("a", "b")),
    ]:
        with pytest.raises(TypeError):
            split(*args)


# ------------------------------------------------------------------- corpus and mutations


@pytest.mark.parametrize("path", CORPUS, ids=[f"{p.parent.name}/{p.name}" for p in CORPUS])
def test_corpus_same_as_reference(c_split: CSplit, path: Path) -> None:
    data = path.read_bytes()
    head = head_of(data)
    if head is not None:
        assert_same_split(c_split, head)
    assert_same_parse(data)


def test_corpus_mostly_split_in_c(c_split: CSplit) -> None:
    """The common shape is the common case: the C split reads most of the corpus."""
    heads = [h for h in map(head_of, MESSAGES) if h is not None]
    read = sum(c_split(h) is not None for h in heads)
    assert read >= len(heads) * 3 // 4, (read, len(heads))


@FUZZ
@given(mutated())
def test_mutated_corpus_same_as_reference(c_split: CSplit, data: bytes) -> None:
    head = head_of(data)
    if head is not None:
        assert_same_split(c_split, head)
    assert_same_parse(data)


# Header lines from pieces that hit every branch of the split: compact forms and other
# one-letter names, names in any case, SINGLE headers (so duplicates are common), names
# that are not tokens, white space around the colon, undecodable and non-ASCII bytes.
_NAMES = st.sampled_from(
    ["Via", "v", "V", "Call-ID", "i", "CSeq", "cseq", "To", "t", "From", "f", "l", "m", "z",
     "Content-Length", "Max-Forwards", "X-Foo", "x-foo", "a.b!%*_+`'~", "", " Via", "\tv",
     "Vi a", "V\u00eda", "Via@", "Via\r", "Via\x00"]
)  # fmt: skip
_WS = st.sampled_from(["", "", " ", "\t", " \t "])
_VALUE = st.lists(
    st.sampled_from(
        ["SIP/2.0/UDP h", "a", "1 INVITE", "<sip:a@b>", ":", " ", "\t", "\r", "\x00", "\u00e9",
         "\udcff", "\udced\udca0\udc80", ";tag=1", ","]
    ),
    max_size=6,
).map("".join)  # fmt: skip
_END = st.sampled_from(["\r\n"] * 12 + ["\n", "\r\n ", "\r\n\t", "\r\r\n"])


@st.composite
def header_line(draw: st.DrawFn) -> str:
    colon = ":" if draw(st.integers(0, 9)) else ""
    return draw(_NAMES) + draw(_WS) + colon + draw(_WS) + draw(_VALUE)


@st.composite
def blocks(draw: st.DrawFn) -> bytes:
    start = draw(st.sampled_from(["INVITE sip:a@b SIP/2.0", "SIP/2.0 200 OK", "", "\u00e9 x"]))
    parts = [start]
    for line in draw(st.lists(header_line(), max_size=12)):
        parts += [draw(_END), line]
    head = "".join(parts).encode("utf-8", "surrogateescape")
    note(f"head: {head!r}")
    return head


@FUZZ
@given(blocks())
@example(b"A\r\nCall-ID: 1\r\ni: 2")
@example(b"A\r\nVia: 1\r\nv: 2\r\nVIA: 3")
@example(b"A\r\nx: 1\r\n X: 2")
def test_generated_blocks_same_as_reference(c_split: CSplit, head: bytes) -> None:
    assert_same_split(c_split, head)
    assert_same_parse(head + b"\r\n\r\n")


# ------------------------------------------------------------------------------ no crash


@FUZZ
@given(
    st.binary(max_size=4096)
    | st.lists(st.sampled_from([b"\r\n", b"\n", b"\r", b":", b" ", b"a", b"v", b"\xff"])).map(
        b"".join
    )
)
@example(b"")
@example(b"\r\n" * (1 << 16))
@example(b"A\r\n" + b"X: y\r\n" * 20000 + b"Z: z")
@example(bytes(range(256)) * 64)
def test_c_never_crashes(c_split: CSplit, data: bytes) -> None:
    assert_same_split(c_split, data)
    assert_same_parse(data)
