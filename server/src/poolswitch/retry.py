"""What to do after an attempt: answer the caller, or try another key. Pure.

The rotation walks the pool: each attempt uses a key not yet tried for this request, and the
request stops after `retry_attempts` attempts in all or when no untried key is available.
"""

from __future__ import annotations

from poolswitch.classifier import Verdict


def should_fail_over(verdict: Verdict, attempts: int, retry_attempts: int) -> bool:
    """True when another key should be tried after `attempts` attempts ended in `verdict`."""
    return verdict.failover and attempts < retry_attempts
