"""`python -m poolswitch_testing.conformance --sdk raw` (from the repository's root)."""

from __future__ import annotations

import sys

from poolswitch_testing.conformance.cli import main

if __name__ == "__main__":
    sys.exit(main())
