"""A rate-limited log line for what a flood can trigger: drops, garbage, resets."""

from __future__ import annotations

import logging
import time


class RateLimitedLog:
    """At most ``burst`` lines per ``interval`` seconds, then one line that counts the rest."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0, burst: int = 5):
        self._logger = logger
        self._interval = interval
        self._burst = burst
        self._window_start = 0.0
        self._sent = 0
        self._held = 0

    def warning(self, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._window_start >= self._interval:
            if self._held:
                self._logger.warning(
                    "%d similar lines held back in the last %.0f s", self._held, self._interval
                )
            self._window_start = now
            self._sent = 0
            self._held = 0
        if self._sent < self._burst:
            self._sent += 1
            self._logger.warning(msg, *args)
        else:
            self._held += 1
