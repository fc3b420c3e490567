"""Retry policies: how often, and how patiently, a failing node is tried again."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workbench.redact import scrub

__all__ = ["RetryPolicy", "policy_for"]

log = logging.getLogger("workbench.runtime")


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how patiently, to retry a failing node.

    ``attempts`` counts the first try. The wait before attempt ``n`` (n >= 2) is
    ``min(initial_delay * backoff ** (n - 2), max_delay)``, scaled by a random factor in
    [0.5, 1.0] when ``jitter`` is on. Only errors ``retry_on`` matches are retried: an exception
    class, a tuple of them, or a function ``error -> bool``.

    A node may have several policies (``retry=[RetryPolicy(...), RetryPolicy(...)]``): the first
    whose ``retry_on`` matches an error decides whether, and how, that error is retried.
    """

    attempts: int = 3
    initial_delay: float = 0.5
    backoff: float = 2.0
    max_delay: float = 30.0
    jitter: bool = True
    retry_on: Any = (Exception,)

    def matches(self, error: BaseException) -> bool:
        """Whether this policy is the one for ``error``. A ``retry_on`` function that raises
        matches nothing (the node's error is not retried, and the warning says why): it used to
        escape the runner and leave the run stuck."""
        if isinstance(self.retry_on, type) or isinstance(self.retry_on, tuple):
            return isinstance(error, self.retry_on)
        try:
            return bool(self.retry_on(error))
        except Exception as exc:
            log.warning("retry_on %s raised %s for %s: not retried", getattr(self.retry_on, "__name__", "function"),
                        scrub(f"{type(exc).__name__}: {exc}"), type(error).__name__)
            return False

    def problem(self) -> str | None:
        """What is wrong with this policy's settings, or None (checked when the node is added)."""
        if not isinstance(self.attempts, int) or isinstance(self.attempts, bool) or self.attempts < 1:
            return f"RetryPolicy attempts must be a whole number >= 1, got {self.attempts!r}"
        for name in ("initial_delay", "backoff", "max_delay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                return f"RetryPolicy {name} must be a number >= 0, got {value!r}"
        on = self.retry_on
        classes = on if isinstance(on, tuple) else (on,)
        if isinstance(on, tuple) or isinstance(on, type):
            bad = [c for c in classes if not (isinstance(c, type) and issubclass(c, BaseException))]
            if bad or not classes:
                return (f"RetryPolicy retry_on must be an exception class, a tuple of them or a function "
                        f"error -> bool, got {bad[0] if bad else on!r}")
        elif not callable(on):
            return (f"RetryPolicy retry_on must be an exception class, a tuple of them or a function "
                    f"error -> bool, got {type(on).__name__}")
        return None

    def delay(self, next_attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before ``next_attempt`` (2 for the first retry)."""
        base = min(self.initial_delay * self.backoff ** max(0, next_attempt - 2), self.max_delay)
        if self.jitter:
            base *= 0.5 + 0.5 * (rng or random).random()
        return base

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """Whether to retry after ``attempt`` (counted within this retry budget) failed."""
        return attempt < self.attempts and self.matches(error)


def policy_for(policies: Sequence[RetryPolicy], error: BaseException) -> RetryPolicy | None:
    """The first of a node's retry policies that matches ``error`` (None: not retried)."""
    for policy in policies:
        if policy.matches(error):
            return policy
    return None
