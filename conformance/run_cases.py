"""Run the conformance cases with one client: `python conformance/run_cases.py --sdk raw`.

See conformance/README.md; `--help` lists the options.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `runner` and `fake_upstream`

from runner.cli import main

if __name__ == "__main__":
    sys.exit(main())
