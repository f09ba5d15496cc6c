"""Logging setup for the command line: one line per record, ``key=value`` where it helps."""

from __future__ import annotations

import logging
import sys


def setup(debug: bool = False) -> None:
    """INFO (or DEBUG with ``--debug``, which adds the per-packet ``<``/``>`` lines) to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
