"""How much the fuzz and property tests may spend: MICROCRED_TEST_BUDGET.

- `ci` (the default, and what `.ci/run` sets): budgets meant to keep the whole CI run under 8
  minutes on 2 cores, each fuzz/property test within a time cap;
- `full`: the long budgets (every example count at its full size, no time cap), for a nightly
  run or before a release: `MICROCRED_TEST_BUDGET=full make test`.

Tests with a long budget are marked `slow` (`pytest -m "not slow"` is the quick loop). They ask
this module for their sizes instead of hard-coding one:

    @settings(max_examples=budget.examples(3000, ci=600), deadline=None)

and a loop that can stop early (schemathesis cases, generated batches) runs until its cap:

    cap = budget.Cap(ci_seconds=45)
    for case in cases:
        if cap.spent():
            break
        ...
    cap.check_ran(minimum=...)  # a capped run that did (almost) nothing is a failure, not a pass

The hypothesis profiles `ci` and `full` (registered in conftest) carry the same choice for
tests that keep hypothesis's own default count.
"""

from __future__ import annotations

import os
import time

ENV = "MICROCRED_TEST_BUDGET"
BUDGETS = ("ci", "full")


def current() -> str:
    value = os.environ.get(ENV, "ci").strip().lower() or "ci"
    if value not in BUDGETS:
        raise ValueError(f"{ENV} must be one of {', '.join(BUDGETS)}, not {value!r}")
    return value


def full() -> bool:
    return current() == "full"


def examples(full_count: int, *, ci: int) -> int:
    """The example count: `full_count` in the full budget, `ci` otherwise."""
    if ci > full_count:
        raise ValueError("the CI budget cannot exceed the full one")
    return full_count if full() else ci


class Cap:
    """A time cap for a loop of generated cases; none in the full budget."""

    def __init__(self, *, ci_seconds: float) -> None:
        self.seconds = None if full() else ci_seconds
        self.started = time.monotonic()
        self.runs = 0

    def spent(self) -> bool:
        """True once the cap is reached (count a run with `ran()` after each case)."""
        return self.seconds is not None and time.monotonic() - self.started >= self.seconds

    def ran(self) -> None:
        self.runs += 1

    def check_ran(self, *, minimum: int) -> None:
        if self.runs < minimum:
            raise AssertionError(
                f"only {self.runs} cases ran within the {self.seconds} s cap (at least {minimum} "
                "must): the machine is too slow for this budget, or the loop is broken"
            )
