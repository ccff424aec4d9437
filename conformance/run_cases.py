"""Run the conformance cases with one client: `python conformance/run_cases.py --sdk raw`.

The runner is `poolswitch_testing.conformance` (`pip install -e ./testing`); this script runs it
over this directory's cases, clients and known-failing lists, like
`python -m poolswitch_testing.conformance --home conformance`. See conformance/README.md;
`--help` lists the options.
"""

from __future__ import annotations

import sys
from pathlib import Path

from poolswitch_testing.conformance.cli import main

if __name__ == "__main__":
    sys.exit(main(home=Path(__file__).resolve().parent))
