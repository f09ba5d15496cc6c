"""The RFC 4475 and RFC 5118 torture messages, each answered as its ``.toml`` says.

The corpus is ``tests/data/rfc4475/`` and ``tests/data/rfc5118/``: bit-exact messages
(``<name>.dat``) with the expected outcome beside each (``<name>.toml``, format in
``tests/data/rfc4475/README.md``). "accept" means :func:`parse` and, for a request,
:func:`validate_request` pass and every listed field holds; "reject" means one of them
raises :class:`SipError` with the listed status (RFC 3261 §8.2, §16.3, §18.3).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from sipcorpus import CORPUS

from sipfarm.sip import Request, SipError, parse, validate_request

_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?\Z")
_PARAMS = ".params."


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


ABSENT: Any = _Absent()


def expectation(dat: Path) -> dict[str, Any]:
    return tomllib.loads(dat.with_suffix(".toml").read_text(encoding="utf-8"))


def _walk(obj: Any, path: str) -> Any:
    for step in path.split("."):
        m = _STEP.match(step)
        if m is None:
            raise ValueError(f"bad path step {step!r}")
        obj = getattr(obj, m.group(1))
        if m.group(2) is not None:
            index = int(m.group(2))
            if obj is None or index >= len(obj):
                return ABSENT
            obj = obj[index]
        if obj is None:
            return None
    return obj


def _param(params: Any, name: str) -> Any:
    """A parameter's value (None for a flag), ABSENT when there is none; names are caseless.

    ``params`` is a mapping or a sequence of ``(name, value)`` pairs.
    """
    lname = name.lower()
    pairs = params.items() if isinstance(params, Mapping) else params
    for key, value in pairs:
        if key.lower() == lname:
            return value
    return ABSENT


def resolve(msg: Any, path: str) -> Any:
    """The value at ``path``: ``a.b[i].c``, ``….params.NAME`` or ``header:NAME``."""
    if path.startswith("header:"):
        return list(msg.headers.get_all(path[len("header:") :]))
    head, sep, name = path.partition(_PARAMS)
    if not sep:
        return _walk(msg, path)
    owner = _walk(msg, head)
    if owner is None or owner is ABSENT:
        return ABSENT
    return _param(owner.params, name)


def matches(path: str, actual: Any, expected: Any) -> bool:
    if _PARAMS in path and expected is True:
        return actual is None  # present, without a value
    if isinstance(expected, int):  # bool too
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, list):
        return isinstance(actual, list) and actual == expected
    if isinstance(actual, bytes):
        return actual == expected.encode("utf-8", "surrogateescape")
    if isinstance(actual, str):
        return actual == expected
    return actual is not None and actual is not ABSENT and str(actual) == expected


def answer(data: bytes) -> Any:
    """What the edge does with one datagram: parse, then validate a request."""
    msg = parse(data)
    if isinstance(msg, Request):
        validate_request(msg)
    return msg


def test_corpus_is_complete() -> None:
    """49 messages of RFC 4475 §3 and 12 of RFC 5118 §4, each with its expectation."""
    names = {p.parent.name: sorted(q.stem for q in CORPUS if q.parent == p.parent) for p in CORPUS}
    assert len(names["rfc4475"]) == 49
    assert len(names["rfc5118"]) == 12
    for dat in CORPUS:
        exp = expectation(dat)
        assert exp["outcome"] in ("accept", "reject"), dat.name
        assert exp["rfc"].startswith(("RFC 4475 §", "RFC 5118 §")), dat.name
        if exp["outcome"] == "reject":
            assert isinstance(exp["status"], int), dat.name
        else:
            assert exp["fields"], dat.name
        raw = dat.read_bytes()
        head = raw.split(b"\r\n\r\n", 1)[0]
        assert b"\n" not in head.replace(b"\r\n", b""), f"{dat.name}: bare LF in the header"


@pytest.mark.parametrize("dat", CORPUS, ids=[p.name for p in CORPUS])
def test_torture(dat: Path) -> None:
    exp = expectation(dat)
    data = dat.read_bytes()
    if exp["outcome"] == "reject":
        with pytest.raises(SipError) as info:
            answer(data)
        assert info.value.status == exp["status"], f"{exp['rfc']}: raised {info.value!r}"
        if "unsupported" in exp:
            named = {
                tag.strip()
                for header, value in info.value.headers
                if header.lower() == "unsupported"
                for tag in value.split(",")
            }
            assert set(exp["unsupported"]) <= named, info.value.headers
        return
    msg = answer(data)
    wrong = []
    for path, expected in exp["fields"].items():
        actual = resolve(msg, path)
        if not matches(path, actual, expected):
            wrong.append(f"{path}: expected {expected!r}, got {actual!r}")
    for path in exp.get("absent", []):
        actual = resolve(msg, path)
        if actual is not None and actual is not ABSENT:
            wrong.append(f"{path}: expected absent, got {actual!r}")
    assert not wrong, f"{exp['rfc']} {exp['title']}:\n" + "\n".join(wrong)
