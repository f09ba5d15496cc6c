"""The torture corpus and the volume fuzzer's mutators, shared by the parser tests.

``CORPUS`` is every RFC 4475 / RFC 5118 message in ``tests/data``; ``mutated()`` is
a Hypothesis strategy over the mutators of ``loadtest/fuzz_parser.py`` (one set of
mutators for the unit tests and the million-input runner).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from hypothesis import note
from hypothesis import strategies as st

DATA = Path(__file__).resolve().parents[2] / "data"
CORPUS = sorted(DATA.glob("rfc4475/*.dat")) + sorted(DATA.glob("rfc5118/*.dat"))
MESSAGES = [p.read_bytes() for p in CORPUS]


def _load_mutators() -> Any:
    if "fuzz_parser" in sys.modules:
        return sys.modules["fuzz_parser"]
    path = Path(__file__).resolve().parents[3] / "loadtest" / "fuzz_parser.py"
    spec = importlib.util.spec_from_file_location("fuzz_parser", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_parser"] = module
    spec.loader.exec_module(module)
    return module


FUZZER = _load_mutators()


@st.composite
def mutated(draw: st.DrawFn, limit: int = 1 << 17) -> bytes:
    """A corpus message after one to eight mutations (flips, insertions of grammar
    fragments, deletions, truncations, duplicated, repeated and swapped lines, CRLF -> LF,
    splices, huge values), driven by Hypothesis so that a failure shrinks."""
    rng = draw(st.randoms(use_true_random=False))
    data: bytes = FUZZER.make_input(rng, MESSAGES)[:limit]
    note(f"input: {data!r}")
    return data
