"""Shared settings of the fuzz tests: the seed, the size of a run, Hypothesis's profile.

    POOLSWITCH_FUZZ_SEED=N   replay a run (every fuzz test prints or names the seed it used)
    POOLSWITCH_FUZZ_LONG=1   the long run (`nox -s fuzz -- --long`): more examples and inputs

Every fuzz module sets `pytestmark = pytest.mark.fuzz`; the `fuzz` marker is deselected by
default (`addopts` in server/pyproject.toml), so `nox -s tests` does not run them and
`nox -s fuzz` runs them with `-m fuzz`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, seed, settings

LONG = os.environ.get("POOLSWITCH_FUZZ_LONG", "") not in ("", "0")
SEED = int(os.environ.get("POOLSWITCH_FUZZ_SEED") or random.SystemRandom().randrange(2**32))

EXAMPLES = 5000 if LONG else 200  # per Hypothesis property
SOCKET_INPUTS = 5000 if LONG else 300  # raw requests against the live proxy

REPLAY = f"replay with POOLSWITCH_FUZZ_SEED={SEED}{' POOLSWITCH_FUZZ_LONG=1' if LONG else ''}"

_F = TypeVar("_F", bound=Callable[..., Any])


def fuzz_settings(examples: int = EXAMPLES) -> Callable[[_F], _F]:
    """Hypothesis settings plus the run's seed, for a property test (use under @given)."""

    def apply(test: _F) -> _F:
        configured: _F = settings(
            max_examples=examples,
            deadline=None,
            database=None,  # nothing written to the work tree; the seed replays a run
            print_blob=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )(test)
        seeded: _F = seed(SEED)(configured)
        return seeded

    return apply


SIGNAL_HEADERS = (
    "retry-after",
    "retry-after-ms",
    "x-ms-retry-after-ms",
    "x-ratelimit-reset",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-input-tokens-reset",
    "anthropic-ratelimit-output-tokens-reset",
    "anthropic-ratelimit-output-tokens-remaining",
)
"""Response headers that carry reset and remaining-quota signals (resets.py reads them)."""
