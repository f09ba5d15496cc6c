"""The sans-IO line (STYLE.md §1): a core imports no edge, no clock, no OS, no third party
(but a pure codec: msgpack for the cluster frames).

Every import statement of every core module is read from its syntax tree (``if
TYPE_CHECKING:`` blocks and function bodies included), relative imports resolved
against the module's package, ``from pkg import name`` read as a possible import of
``pkg.name``.  The first-party modules a core imports are cores too, so the walk
follows them: a core may not reach an edge through a helper module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: First-party top-level packages (pyproject.toml ``[tool.setuptools.packages.find]``).
FIRST_PARTY = frozenset({"sipfarm", "cluster", "media", "mail"})

#: Third-party libraries a core may use: pure codecs, no I/O (msgpack: the cluster frames).
CODECS = frozenset({"msgpack"})

#: Core modules and packages; globs, so that cores still to come are checked once they exist.
CORE_GLOBS = (
    "sipfarm/sip/**/*.py",
    "sipfarm/stateless.py",
    "sipfarm/actions.py",
    "sipfarm/transaction/**/*.py",
    "sipfarm/transaction.py",
    "sipfarm/auth/**/*.py",
    "sipfarm/registrar/**/*.py",
    "sipfarm/proxy/**/*.py",
    "sipfarm/core.py",
    "sipfarm/ownership.py",
    "sipfarm/router.py",
    "sipfarm/flows.py",
    "cluster/ring.py",
    "cluster/frames.py",
    "cluster/membership.py",
    "sipfarm/cluster/ring.py",
    "mail/errors.py",
    "mail/names.py",
    "mail/layout.py",
    "mail/foldering.py",
    "mail/settings.py",
    "mail/api.py",
)

#: What a core may not import: I/O, clocks, OS, logging, event loops, and the edges.
FORBIDDEN = (
    "asyncio", "socket", "time", "os", "ssl", "selectors", "logging", "uvloop",
    "sipfarm.transport", "sipfarm.node", "sipfarm.cli", "mail.store", "mail.directory",
    "cluster.etcd", "cluster.link", "aetcd",
)  # fmt: skip


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_path(name: str) -> Path | None:
    """The first-party file of module ``name``, or None when it is not a module of ours."""
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def core_modules() -> list[Path]:
    found = {p for pattern in CORE_GLOBS for p in REPO.glob(pattern) if p.is_file()}
    return sorted(found)


def imports(source: str, name: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """``(line, module)`` for every module the source of module ``name`` may import.

    ``from a.b import c`` yields ``a.b`` and ``a.b.c`` (``c`` may be a submodule);
    ``from ..x import y`` is resolved against the package of ``name``.
    """
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                up = node.level - 1
                if up >= len(parts):
                    raise AssertionError(f"{name}:{node.lineno}: relative import beyond the top")
                base = ".".join(parts[: len(parts) - up])
                target = f"{base}.{node.module}" if node.module else base
            else:
                assert node.module is not None
                target = node.module
            yield node.lineno, target
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{target}.{alias.name}"


def is_forbidden(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FORBIDDEN)


def file_imports(path: Path) -> list[tuple[int, str]]:
    return list(
        imports(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")
    )


def parents(module: str) -> list[str]:
    """``a.b.c`` -> ``a``, ``a.b``: importing a module runs its packages' ``__init__`` first."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def reachable_first_party(start: Path) -> dict[Path, str]:
    """Every first-party file importing ``start`` runs, each with how it was reached."""
    seen: dict[Path, str] = {start: module_name(start)}
    todo = [start]
    for name in parents(module_name(start)):
        path = module_path(name)
        if path is not None and path not in seen:
            seen[path] = f"{module_name(start)} (its package)"
            todo.append(path)
    while todo:
        path = todo.pop()
        for _, imported in file_imports(path):
            for name in (*parents(imported), imported):
                target = module_path(name)
                if target is not None and target not in seen:
                    seen[target] = f"{seen[path]} -> {name}"
                    todo.append(target)
    return seen


CORES = core_modules()


def test_the_cores_are_found() -> None:
    """The globs still match the tree: the message core, the stateless core, the actions."""
    names = {module_name(p) for p in CORES}
    assert {"sipfarm.sip.message", "sipfarm.stateless", "sipfarm.actions"} <= names


@pytest.mark.parametrize(
    ("source", "name", "is_package", "bad"),
    [
        ("import asyncio", "sipfarm.sip.x", False, "asyncio"),
        ("import os.path", "sipfarm.sip.x", False, "os.path"),
        ("from time import monotonic", "sipfarm.sip.x", False, "time"),
        ("from ..transport import tcp", "sipfarm.sip.x", False, "sipfarm.transport"),
        ("from .. import node", "sipfarm.sip.x", False, "sipfarm.node"),
        ("from . import cli", "sipfarm.stateless", False, "sipfarm.cli"),
        ("from ...transport.udp import bind_udp", "sipfarm.transaction.client.x", False,
         "sipfarm.transport.udp"),
        ("from ..transport import x", "sipfarm.sip", True, "sipfarm.transport"),
        ("def f():\n    import socket\n", "sipfarm.sip.x", False, "socket"),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import logging\n",
         "sipfarm.sip.x", False, "logging"),
    ],
)  # fmt: skip
def test_the_checker_sees_edge_imports(source: str, name: str, is_package: bool, bad: str) -> None:
    found = [m for _, m in imports(source, name, is_package) if is_forbidden(m)]

    assert bad in found


@pytest.mark.parametrize(
    "source",
    ["import timeit", "import osmium", "from .message import parse", "from ..sip import via",
     "import dataclasses"],
)  # fmt: skip
def test_the_checker_lets_the_rest_pass(source: str) -> None:
    assert not [m for _, m in imports(source, "sipfarm.sip.x", False) if is_forbidden(m)]


@pytest.mark.parametrize("path", CORES, ids=lambda p: str(p.relative_to(REPO)))
def test_core_imports_no_edge(path: Path) -> None:
    bad = [
        f"{module_name(p)}:{line} imports {m} (reached as {how})"
        for p, how in reachable_first_party(path).items()
        for line, m in file_imports(p)
        if is_forbidden(m)
    ]

    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", CORES, ids=lambda p: str(p.relative_to(REPO)))
def test_core_imports_only_stdlib_and_first_party(path: Path) -> None:
    bad = [
        f"{module_name(p)}:{line} imports {m} (reached as {how})"
        for p, how in reachable_first_party(path).items()
        for line, m in file_imports(p)
        if m.partition(".")[0] not in sys.stdlib_module_names | FIRST_PARTY | CODECS
    ]

    assert not bad, "\n".join(bad)


def test_importing_the_cores_loads_no_edge() -> None:
    """The same, at run time, in a fresh interpreter: dynamic imports included.

    ``os`` and ``time`` are left out here: the standard library loads them itself
    (``dataclasses`` imports ``inspect``, which imports ``os``).
    """
    names = [module_name(p) for p in CORES]
    watched = [f for f in FORBIDDEN if f not in ("os", "time")]
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        f"watched = {watched!r}\n"
        "print('\\n'.join(sorted(m for m in sys.modules\n"
        "    if any(m == w or m.startswith(w + '.') for w in watched))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [], result.stdout
