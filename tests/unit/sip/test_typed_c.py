"""The C typed parsers of ``sipfarm.sip._speedups`` against the Python parsers.

``parse_uri``, ``parse_nameaddr`` and ``parse_via`` ask C first when the extension is built
(``uri._parse_uri_c``, ``nameaddr._parse_nameaddr_c``, ``via._parse_via_c``); the Python
code stays the reference and reads whatever C hands back (None). On literal values, on the
Request-URI and every Via, From, To, Contact, Route and Record-Route value and element of
the RFC 4475 / RFC 5118 corpus, on the same in mutated messages (the mutators of
``loadtest/fuzz_parser.py``), on strings generated from grammar pieces and on arbitrary
``str`` (non-ASCII and the lone surrogates of surrogateescape included), each C parser
returns what the reference returns (equal, of the same type at every level, with the same
``str()``) exactly when the text has the common shape (``read_in_c``), hands it back
otherwise, and never raises. The public functions answer the same with and without C,
errors included.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st
from sipcorpus import CORPUS, MESSAGES, mutated

import sipfarm.sip.nameaddr as NAMEADDR
import sipfarm.sip.uri as URI
import sipfarm.sip.via as VIA
from sipfarm.sip import (
    NameAddr,
    Params,
    SipError,
    SipUri,
    Via,
    parse_nameaddr,
    parse_uri,
    parse_via,
)
from sipfarm.sip.grammar import split_comma
from sipfarm.sip.headers import key
from sipfarm.sip.params import EMPTY

try:  # more parameters than this in one URI or header value: left to Python
    from sipfarm.sip._speedups import PARAMS_MAX  # type: ignore[import-not-found]
except ImportError:  # not built: the tests that use it are skipped
    PARAMS_MAX = 0

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
STRINGS = settings(max_examples=1500, deadline=None)


@dataclass(frozen=True)
class Parser:
    """One typed parser: its module, the name of its C function there, the public function."""

    module: ModuleType
    attr: str
    public: Callable[[str], object]

    @property
    def c(self) -> Any:
        return vars(self.module)[self.attr]


PARSERS = {
    "uri": Parser(URI, "_parse_uri_c", parse_uri),
    "nameaddr": Parser(NAMEADDR, "_parse_nameaddr_c", parse_nameaddr),
    "via": Parser(VIA, "_parse_via_c", parse_via),
}
KINDS = list(PARSERS)

CParse = Callable[[str, Any], object]
T = TypeVar("T")


@pytest.fixture(scope="module")
def c_parse() -> CParse:
    """``c_parse(kind, text)``: the C parser of that kind; the test is skipped where the
    extension is not built, and fails in CI, which builds it."""
    if any(p.c is None for p in PARSERS.values()):
        if os.environ.get("CI"):
            pytest.fail("sipfarm.sip._speedups is not built in CI (install.sh builds it)")
        pytest.skip("sipfarm.sip._speedups is not built (no C compiler at install time)")
    functions = {kind: p.c for kind, p in PARSERS.items()}

    def c(kind: str, text: Any) -> object:
        return functions[kind](text)

    return c


@contextmanager
def python_only() -> Iterator[None]:
    """The typed parsers without C (what they do where the extension is not built)."""
    with pytest.MonkeyPatch.context() as mp:
        for p in PARSERS.values():
            mp.setattr(p.module, p.attr, None)
        yield


def typed(value: object) -> object:
    """``value`` with the type of every part beside it, so that == also compares types."""
    if isinstance(value, tuple):
        return type(value), tuple(typed(v) for v in value)
    return type(value), value


def outcome(kind: str, text: str) -> tuple[object, ...]:
    """What the public function makes of ``text``: the typed value and its str, or the error."""
    try:
        value = PARSERS[kind].public(text)
    except SipError as exc:
        return "error", type(exc), exc.status, exc.reason, exc.headers
    return "ok", typed(value), str(value)


def _params_fit(*params: Params) -> bool:
    return all(len(p) <= PARAMS_MAX for p in params)


def read_in_c(kind: str, text: str) -> bool:
    """Whether ``text`` has the common shape that C reads: the reference accepts it through
    its fast pattern (``_FAST_SIP`` of uri.py, ``_FAST`` of nameaddr.py and via.py), with
    a ``sip:``/``sips:`` URI in that pattern's shape, no quoted-pair, no more than
    PARAMS_MAX parameters, and no non-ASCII character outside a quoted display name."""
    with python_only():
        try:
            value: Any = PARSERS[kind].public(text)
        except SipError:
            return False
    if kind == "uri":
        return URI._FAST_SIP.match(text) is not None and _params_fit(value.params)
    ascii_part = text
    if kind == "nameaddr":
        if NAMEADDR._FAST.match(text) is None or not isinstance(value.uri, SipUri):
            return False
        if URI._FAST_SIP.match(str(value.uri)) is None:
            return False
        if text.startswith('"'):
            ascii_part = text[text.index('"', 1) + 1 :]
        return (
            ascii_part.isascii()
            and "\\" not in ascii_part
            and _params_fit(value.params, value.uri.params)
        )
    return (
        VIA._FAST.match(text) is not None
        and text.isascii()
        and "\\" not in text
        and _params_fit(value.params)
    )


def assert_same(c_parse: CParse, kind: str, text: str) -> object:
    """C gives the reference's value when ``text`` has the common shape (read_in_c) and
    hands it back (None) otherwise; the public function answers as the reference. Returns
    what C returned."""
    got = c_parse(kind, text)
    with python_only():
        want = outcome(kind, text)
    assert (got is not None) == read_in_c(kind, text), (text, got, want)
    if got is not None:
        assert want[0] == "ok", (text, got, want)
        assert typed(got) == want[1]
        assert str(got) == want[2]
    assert outcome(kind, text) == want
    return got


# ------------------------------------------------------------------------------- literals

_PARAMS_LR = Params([("lr", None)])


def _uri(text: str, host: str, user: str | None = None, port: int | None = None,
         params: Params = EMPTY, scheme: str = "sip") -> SipUri:  # fmt: skip
    return SipUri(host, user, None, port, params, (), scheme, text)


READ_IN_C: list[tuple[str, str, object]] = [
    ("uri", "sip:h", _uri("sip:h", "h")),
    ("uri", "sips:bob@biloxi.example.com", _uri("sips:bob@biloxi.example.com",
     "biloxi.example.com", "bob", scheme="sips")),
    ("uri", "sip:alice@client.atlanta.example.com;transport=tcp",
     _uri("sip:alice@client.atlanta.example.com;transport=tcp", "client.atlanta.example.com",
          "alice", params=Params([("transport", "tcp")]))),
    ("uri", "sip:192.0.2.1:5060;lr", _uri("sip:192.0.2.1:5060;lr", "192.0.2.1", port=5060,
     params=_PARAMS_LR)),
    ("uri", "sip:255.255.255.255:65535", _uri("sip:255.255.255.255:65535",
     "255.255.255.255", port=65535)),
    ("uri", "sip:0.0.0.0:0", _uri("sip:0.0.0.0:0", "0.0.0.0", port=0)),
    ("uri", "sip:h:00080", _uri("sip:h:00080", "h", port=80)),
    ("uri", "sip:Host.Example.COM.", _uri("sip:Host.Example.COM.", "Host.Example.COM.")),
    ("uri", "sip:1.2.3.4.example", _uri("sip:1.2.3.4.example", "1.2.3.4.example")),
    ("uri", "sip:a--b.c0", _uri("sip:a--b.c0", "a--b.c0")),
    ("uri", "sip:+1-972-555-2222;x=1@gw.example.net;user=phone",
     _uri("sip:+1-972-555-2222;x=1@gw.example.net;user=phone", "gw.example.net",
          "+1-972-555-2222;x=1", params=Params([("user", "phone")]))),
    ("uri", "sip:u-_.!~*'()&=+$,;?/@h", _uri("sip:u-_.!~*'()&=+$,;?/@h", "h",
     "u-_.!~*'()&=+$,;?/")),
    ("uri", "sip:h;a;b=[::1];c=-_.!~*'()[]/:&+$;A=B",
     _uri("sip:h;a;b=[::1];c=-_.!~*'()[]/:&+$;A=B", "h",
          params=Params([("a", None), ("b", "[::1]"), ("c", "-_.!~*'()[]/:&+$"),
                         ("A", "B")]))),
    ("nameaddr", "<sips:bob@client.biloxi.example.com>",
     NameAddr(_uri("sips:bob@client.biloxi.example.com", "client.biloxi.example.com", "bob",
                   scheme="sips"))),
    ("nameaddr", "Bob <sips:bob@biloxi.example.com>;tag=a73kszlfl",
     NameAddr(_uri("sips:bob@biloxi.example.com", "biloxi.example.com", "bob", scheme="sips"),
              "Bob", Params([("tag", "a73kszlfl")]))),
    ("nameaddr", "Alice B.\t Smith\t<sip:a@h> \t; tag = 1 ;lr;\texpires=3600;q=0.5",
     NameAddr(_uri("sip:a@h", "h", "a"), "Alice B.\t Smith",
              Params([("tag", "1"), ("lr", None), ("expires", "3600"), ("q", "0.5")]))),
    ("nameaddr", '"" <sip:h>', NameAddr(_uri("sip:h", "h"), "")),
    ("nameaddr", '"Joe \u00e9\u65e5\udcff\x00\r\n;<>" <sip:h>',
     NameAddr(_uri("sip:h", "h"), "Joe \u00e9\u65e5\udcff\x00\r\n;<>")),
    ("nameaddr", '"A"<sip:h;lr>;p="x;y"',
     NameAddr(_uri("sip:h;lr", "h", params=_PARAMS_LR), "A", Params([("p", '"x;y"')]))),
    ("nameaddr", '<sip:h>;p = "" ;received=[2001:db8::1];m=a:b%41',
     NameAddr(_uri("sip:h", "h"), None,
              Params([("p", '""'), ("received", "[2001:db8::1]"), ("m", "a:b%41")]))),
    ("via", "SIP/2.0/UDP h", Via("UDP", "h")),
    ("via", "SIP/2.0/tls client.biloxi.example.com:5061;branch=z9hG4bKnashd92",
     Via("TLS", "client.biloxi.example.com", 5061, Params([("branch", "z9hG4bKnashd92")]))),
    ("via", "SIP/2.0/UDP 192.0.2.1:5060 ;branch=z9hG4bK1; rport ;received=192.0.2.2",
     Via("UDP", "192.0.2.1", 5060,
         Params([("branch", "z9hG4bK1"), ("rport", None), ("received", "192.0.2.2")]))),
    ("via", 'SIP/2.0/WSS h;x="a b"', Via("WSS", "h", None, Params([("x", '"a b"')]))),
    ("uri", "sip:h" + ";lr" * PARAMS_MAX, _uri("sip:h" + ";lr" * PARAMS_MAX, "h",
     params=Params([("lr", None)] * PARAMS_MAX))),
    ("via", "SIP/2.0/UDP h" + ";a" * PARAMS_MAX,
     Via("UDP", "h", None, Params([("a", None)] * PARAMS_MAX))),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "text", "value"), READ_IN_C)
def test_literal_read_in_c(c_parse: CParse, kind: str, text: str, value: object) -> None:
    got = c_parse(kind, text)
    assert got == value
    assert typed(got) == typed(value)
    assert assert_same(c_parse, kind, text) is not None


def test_empty_params_are_the_shared_empty(c_parse: CParse) -> None:
    uri = c_parse("uri", "sip:h")
    via = c_parse("via", "SIP/2.0/UDP h")
    na = c_parse("nameaddr", "<sip:h>")
    assert isinstance(uri, SipUri) and isinstance(via, Via) and isinstance(na, NameAddr)
    assert uri.params is EMPTY and via.params is EMPTY and na.params is EMPTY
    assert uri.headers == () and uri.password is None and uri.raw == "sip:h"


HANDED_BACK: list[tuple[str, str]] = [
    # parse_uri: not the common shape, or the reference raises
    ("uri", ""), ("uri", "sip:"), ("uri", "SIP:h"), ("uri", "Sip:h"), ("uri", "tel:+1"),
    ("uri", "urn:x"), ("uri", "sip:a:pw@h"), ("uri", "sip:%61@h"), ("uri", "sip:@h"),
    ("uri", "sip:h?X=1"), ("uri", "sip:[::1]"), ("uri", "sip:a@[2001:db8::1]:5060"),
    ("uri", "sip:h:"), ("uri", "sip:h:65536"), ("uri", "sip:h:99999"), ("uri", "sip:h:123456"),
    ("uri", "sip:256.1.1.1"), ("uri", "sip:01.2.3.4"), ("uri", "sip:1.2.3"),
    ("uri", "sip:1.2.3.4."),
    ("uri", "sip:-h"), ("uri", "sip:h-"), ("uri", "sip:a.-b.c"), ("uri", "sip:a-.b"),
    ("uri", "sip:a..b"), ("uri", "sip:.a"), ("uri", "sip:a.1b"), ("uri", "sip:h;"),
    ("uri", "sip:h;=1"), ("uri", "sip:h;a="), ("uri", "sip:h;a=b=c"), ("uri", "sip:h;%6C%72"),
    ("uri", "sip:h;a=%41"), ("uri", "sip:h "), ("uri", " sip:h"), ("uri", "sip:h\r\n"),
    ("uri", "sip:h\u00e9"), ("uri", "sip:\u00e9@h"), ("uri", "sip:h;\udcff"),
    ("uri", "sip:h\x00"), ("uri", "sip:a@b@h"),
    # parse_nameaddr
    ("nameaddr", "sip:a@h;tag=1"), ("nameaddr", "<tel:+1>"), ("nameaddr", "<sip:h"),
    ("nameaddr", "<sip:h> "), ("nameaddr", " <sip:h>"), ("nameaddr", "<sip:h>x"),
    ("nameaddr", "<sip:h>;"), ("nameaddr", "<sip:h>;tag="),
    ("nameaddr", "<sip:h>;;tag=1"), ("nameaddr", "<sip:h>;tag=1;"), ("nameaddr", "<sip:h>;a=b=c"),
    ("nameaddr", "<sip:h>;a=b c"), ("nameaddr", '<sip:h>;a="b'), ("nameaddr", '<sip:h>;a="b\\"c"'),
    ("nameaddr", '<sip:h>;a="b"c'), ("nameaddr", '<sip:h>;a="\u00e9"'),
    ("nameaddr", "<sip:h>;a=\u00e9"), ("nameaddr", '"A\\" B" <sip:h>'), ("nameaddr", '"A <sip:h>'),
    ("nameaddr", '"A"B <sip:h>'), ("nameaddr", "A\u00e9 <sip:h>"), ("nameaddr", "A, B <sip:h>"),
    ("nameaddr", "<sip:a@h >"), ("nameaddr", "< sip:h>"), ("nameaddr", "<sip:h>>"),
    ("nameaddr", "<<sip:h>"), ("nameaddr", "<sip:[::1]>"), ("nameaddr", '"\u00e9" <sip:\u00e9>'),
    ("nameaddr", '"\u00e9" <sip:h>;\u00e9'), ("nameaddr", "<sip:h>\r\n;tag=1"),
    ("nameaddr", ""), ("nameaddr", "<>"),
    # parse_via
    ("via", "SIP/2.0/UDP [::1]:5060"), ("via", "SIP / 2.0 / UDP h"), ("via", "sip/2.0/UDP h"),
    ("via", "SIP/2.0/UDP  h"), ("via", "SIP/2.0/UDP\th"), ("via", "SIP/2.0/UD-P h"),
    ("via", "SIP/2.0/ h"), ("via", "SIP/2.0/UDP h:"), ("via", "SIP/2.0/UDP h:65536"),
    ("via", "SIP/2.0/UDP h:123456"), ("via", "SIP/2.0/UDP h "), ("via", "SIP/2.0/UDP h;"),
    ("via", "SIP/2.0/UDP h : 5060"), ("via", "SIP/2.0/UDP h;branch=\u00e9"),
    ("via", "SIP/2.0/UDP h;a=\"\\\"\""), ("via", "SIP/3.0/UDP h"), ("via", "SIP/2.0/UDP 256.0.0.1"),
    ("via", "SIP/2.0/UDP h x"), ("via", ""),
    # more than PARAMS_MAX parameters
    ("uri", "sip:h" + ";lr" * (PARAMS_MAX + 1)), ("via", "SIP/2.0/UDP h" + ";a" * (PARAMS_MAX + 1)),
    ("nameaddr", "<sip:h>" + ";a=1" * (PARAMS_MAX + 1)),
    ("nameaddr", "<sip:h" + ";lr" * (PARAMS_MAX + 1) + ">"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "text"), HANDED_BACK)
def test_literal_handed_back(c_parse: CParse, kind: str, text: str) -> None:
    assert c_parse(kind, text) is None
    assert_same(c_parse, kind, text)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("arg", [b"sip:h", bytearray(b"sip:h"), None, 1, ["sip:h"]])
def test_not_a_str(c_parse: CParse, kind: str, arg: object) -> None:
    assert c_parse(kind, arg) is None


def test_str_subclass_handed_back(c_parse: CParse) -> None:
    class S(str):
        pass

    for kind, text in [("uri", "sip:h"), ("nameaddr", "<sip:h>"), ("via", "SIP/2.0/UDP h")]:
        assert c_parse(kind, S(text)) is None


def _fresh_speedups() -> Any:
    """A second, unconfigured instance of the extension module (multi-phase init)."""
    spec = importlib.util.find_spec("sipfarm.sip._speedups")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configure(c_parse: CParse) -> None:
    fresh = _fresh_speedups()
    with pytest.raises(RuntimeError, match="configure"):
        fresh.parse_uri("sip:h")
    fresh.configure(sip_uri=SipUri)
    with pytest.raises(RuntimeError, match="configure"):
        fresh.parse_uri("sip:h")  # Params not given yet
    fresh.configure(params=Params, empty_params=EMPTY)
    assert fresh.parse_uri("sip:h;lr") == _uri("sip:h;lr", "h", params=_PARAMS_LR)
    with pytest.raises(RuntimeError, match="configure"):
        fresh.parse_via("SIP/2.0/UDP h")
    assert fresh.parse_via(b"SIP/2.0/UDP h") is None  # not a str: handed back first
    fresh.configure(via=Via, name_addr=NameAddr)
    assert fresh.parse_via("SIP/2.0/UDP h") == Via("UDP", "h")
    assert fresh.parse_nameaddr("<sip:h>") == NameAddr(_uri("sip:h", "h"))
    refused: list[dict[str, Any]] = [
        {"sip_uri": 1}, {"sip_uri": Via}, {"via": list}, {"params": Params()},
        {"empty_params": Params}, {"empty_params": ("x",)}, {"other": Via},
    ]  # fmt: skip
    for kwargs in refused:
        with pytest.raises(TypeError):
            fresh.configure(**kwargs)
    with pytest.raises(TypeError):
        fresh.configure(SipUri)
    assert fresh.parse_uri("sip:h") == _uri("sip:h", "h")  # refused calls changed nothing


# ------------------------------------------------------------------- corpus and mutations

#: The header fields parse() reads through a typed parser, by registry key.
_TYPED_HEADERS = {
    "via": "via",
    "from": "nameaddr",
    "to": "nameaddr",
    "contact": "nameaddr",
    "route": "nameaddr",
    "record-route": "nameaddr",
}


def typed_values(data: bytes) -> Iterator[tuple[str, str]]:
    """(kind, text): the Request-URI of ``data`` and every value of its typed headers, whole,
    comma-split as parse() splits it, and the URI inside each ``<…>``; read as parse() reads
    lines (decoded with surrogateescape, folded lines joined), whatever the bytes are."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "surrogateescape")
    lines = head.replace("\r\n", "\n").split("\n")
    start = lines[0].split(" ")
    if len(start) == 3:
        yield "uri", start[1]
    unfolded: list[str] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and unfolded:
            unfolded[-1] += " " + line.strip(" \t")
        else:
            unfolded.append(line)
    for line in unfolded:
        name, colon, value = line.partition(":")
        kind = _TYPED_HEADERS.get(key(name.strip(" \t")))
        if not colon or kind is None:
            continue
        value = value.strip(" \t")
        try:
            elements = split_comma(value)
        except SipError:
            elements = value.split(",")
        for text in dict.fromkeys([value, *elements]):
            yield kind, text
            lt, gt = text.find("<"), text.find(">")
            if 0 <= lt < gt:
                yield "uri", text[lt + 1 : gt]


def _corpus_values() -> list[tuple[str, str]]:
    return list(dict.fromkeys(v for data in MESSAGES for v in typed_values(data)))


CORPUS_VALUES = _corpus_values()


@pytest.mark.parametrize("path", CORPUS, ids=[f"{p.parent.name}/{p.name}" for p in CORPUS])
def test_corpus_same_as_reference(c_parse: CParse, path: Path) -> None:
    values = list(typed_values(path.read_bytes()))
    assert values
    for kind, text in values:
        assert_same(c_parse, kind, text)


@pytest.mark.parametrize("kind", KINDS)
def test_corpus_reaches_c(c_parse: CParse, kind: str) -> None:
    """The torture corpus is mostly unusual shapes, but C reads a good number of its values."""
    read = sum(c_parse(kind, text) is not None for k, text in CORPUS_VALUES if k == kind)
    assert read >= 40, (kind, read)


@FUZZ
@given(mutated())
def test_mutated_corpus_same_as_reference(c_parse: CParse, data: bytes) -> None:
    for kind, text in typed_values(data):
        assert_same(c_parse, kind, text)


# --------------------------------------------------------------------- generated strings

# Pieces of the three grammars, with their near misses: upper-case schemes, escapes,
# passwords, IPv6, bad octets and labels, big ports, quotes and backslashes, white space,
# non-ASCII and lone surrogates.
_PIECES = [
    "sip:", "sips:", "SIP:", "tel:", "alice", "Bob", "+1-972", "@", ":", "pw", "%41", "%",
    "example.com", "h", "a-b", "-a", "a-", ".", "..", "0", "1", "01", "192.0.2.1", "255",
    "256.1.1.1", "1.2.3.4", "[2001:db8::1]", "[::1]", ":5060", ":65535", ":65536", ":99999",
    ":000001", ";", "=", "lr", "transport=tcp", "maddr=192.0.2.1", "tag=", "tag=a73kszlfl",
    "branch=z9hG4bK1", "rport", "received=[::1]", "q=0.5", "?", "&", "<", ">", '"', "\\",
    " ", "  ", "\t", ",", "SIP/2.0/", "SIP/2.0/UDP ", "UDP", "tcp", " ", "Alice Smith",
    '"Alice"', '"A;B"', "[", "]", "/", "$", "(", "'", "`", "~", "*", "!", "_",
    "\u00e9", "\u65e5", "\udcff", "\udced", "\x00", "\r", "\n", "\x0b", "\x1c", "\x85",
    "\xa0", "\u2028",
]  # fmt: skip
_strings = st.lists(st.sampled_from(_PIECES), max_size=16).map("".join)


@st.composite
def _near(draw: st.DrawFn, good: list[T], bad: list[T]) -> T:
    """Mostly one of the good pieces, sometimes a near miss (shrinking towards good)."""
    return draw(st.sampled_from(bad if draw(st.integers(0, 9)) == 9 else good))


_hosts = _near(
    ["h", "example.com", "Host.Example.COM.", "192.0.2.1", "0.0.0.0", "255.255.255.255",
     "a-b.c", "a1.b2.c", "1.2.3.4.example", "x.y-z.com"],
    ["256.0.0.1", "01.2.3.4", "1.2.3", "-a", "a-", "a..b", ".a", "a.1b", "[::1]", "",
     "h\u00e9", "1.2.3.4.", "a_b"],
)  # fmt: skip
_ports = st.sampled_from(["", "", "", ":5060", ":0", ":65535", ":00080", ":65536", ":99999",
                          ":123456", ":", ": 5060"])  # fmt: skip
_uri_params = st.lists(
    _near([";lr", ";transport=tcp", ";user=phone", ";maddr=192.0.2.1", ";x=[::1]", ";A=B",
           ";a-_.!~*'()[]/:&+$=z"],
          [";", ";=1", ";a=", ";a=b=c", ";%6C%72", ";a=%41", "; lr", ";a=\u00e9", ";a b"]),
    max_size=4,
).map("".join)  # fmt: skip
_users = _near(["", "", "alice@", "+1-972-555;x=1@", "u-_.!~*'()&=+$,;?/@"],
               ["a:pw@", "%61@", "@", "a b@", "\u00e9@", "a@b@"])  # fmt: skip


@st.composite
def sip_uris(draw: st.DrawFn) -> str:
    scheme = draw(_near(["sip:", "sips:"], ["SIP:", "tel:", "sip", "sip: "]))
    tail = draw(_near(["", ""], ["?X=1", " ", "\r\n", "\udcff", ">"]))
    return scheme + draw(_users) + draw(_hosts) + draw(_ports) + draw(_uri_params) + tail


_ws = st.sampled_from(["", "", " ", "\t", " \t "])
_header_params = st.lists(
    st.tuples(
        _ws,
        _near(["tag", "lr", "expires", "q", "branch", "received", "rport", "x-y.z!%*_+`'~"],
              ["", "a b", "\u00e9", '"t"', "a=b", "[x]"]),
        _ws,
        _near(["", "=1", "=z9hG4bK.x-1", "=0.5", "=[2001:db8::1]", "=a:b", '="x; y"', '=""',
               '="\x00\t<>"'],
              ["=", "= ", "=a b", '="x', '="a\\"b"', '="\u00e9"', "=\u00e9", '="a"b', "=a=b",
               "=<x>"]),
        _ws,
    ).map("".join),
    max_size=4,
).map(lambda ps: "".join(";" + p for p in ps))  # fmt: skip


@st.composite
def name_addrs(draw: st.DrawFn) -> str:
    display = draw(_near(
        ["", "", "Bob ", "Alice B.\t Smith\t", '"Bob" ', '""', '"J\u00e9r\u00f4me \udcff" ',
         '"a;<b>,c"\t'],
        ['"A\\"B" ', '"A ', "A\u00e9 ", " Bob ", "A, B ", '"A"B ', "\u65e5 "],
    ))  # fmt: skip
    lt, gt = draw(_near([("<", ">")], [("", ""), ("<", ""), ("< ", ">"), ("<", " >"),
                                        ("<<", ">"), ("<", ">>")]))  # fmt: skip
    after = draw(_near(["", "", " ", "\t"], ["x", "\r\n", ","]))
    params = draw(_header_params)
    return display + lt + draw(sip_uris()) + gt + (after + params if params else after.strip())


@st.composite
def vias(draw: st.DrawFn) -> str:
    protocol = draw(_near(["SIP/2.0/"], ["sip/2.0/", "SIP / 2.0 / ", "SIP/3.0/", "SIP/2.0"]))
    transport = draw(_near(["UDP", "TCP", "tls", "Ws", "SCTP"], ["", "UD-P", "U1", "\u00e9"]))
    sp = draw(_near([" "], ["", "  ", "\t", " \t"]))
    after = draw(_near(["", "", " ", "\t "], ["x", "\r\n"]))
    params = draw(_header_params)
    return protocol + transport + sp + draw(_hosts) + draw(_ports) + after + params


_KINDS = st.sampled_from(KINDS)
_SHAPED = {"uri": sip_uris(), "nameaddr": name_addrs(), "via": vias()}


@STRINGS
@given(_KINDS, _strings)
@example("nameaddr", '"A \\" B" <sip:alice@example.com:5060;lr>;tag=x')
@example("via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport")
def test_grammar_pieces_same_as_reference(c_parse: CParse, kind: str, text: str) -> None:
    note(f"text: {text!r}")
    assert_same(c_parse, kind, text)


@STRINGS
@given(st.data())
def test_shaped_values_same_as_reference(c_parse: CParse, data: st.DataObject) -> None:
    for kind in KINDS:
        text = data.draw(_SHAPED[kind], label=kind)
        assert_same(c_parse, kind, text)


def test_shaped_values_mostly_read_in_c(c_parse: CParse) -> None:
    """The shaped generators reach the accepting side of C, not only its refusals."""
    read = {kind: 0 for kind in KINDS}

    @settings(max_examples=300, deadline=None, database=None)
    @given(st.data())
    def count(data: st.DataObject) -> None:
        for kind in KINDS:
            read[kind] += c_parse(kind, data.draw(_SHAPED[kind])) is not None

    count()
    assert all(n >= 30 for n in read.values()), read


# ------------------------------------------------------------------------------ no crash

_any_char = st.integers(0, 0x10FFFF).map(chr)  # lone surrogates included


_few_chars = st.sampled_from('sip:@<>;=" \t\\SIP/2.0UDP.1\u00e9\udcff')


@STRINGS
@given(_KINDS, st.text(_any_char, max_size=64) | st.text(_few_chars, max_size=40))
@example("nameaddr", '"\udcff')
@example("nameaddr", '"\U0010ffff" <sip:h>')
@example("uri", "sip:" + "a" * 100000)
@example("nameaddr", "<sip:h>" + ";a=b" * 20000)
@example("via", "SIP/2.0/UDP " + "a." * 50000 + "b")
def test_c_never_crashes(c_parse: CParse, kind: str, text: str) -> None:
    assert_same(c_parse, kind, text)
