"""Compatibility for the Node and Go SDK harnesses, which start the fake upstream by this path
(`$POOLSWITCH_PYTHON conformance/fake_upstream.py --keys ...`). The fake is
`poolswitch_testing.fake_upstream` (`pip install -e ./testing`); run it as
`python -m poolswitch_testing.fake_upstream`. Remove this file once no harness names it.
"""

from __future__ import annotations

import sys

from poolswitch_testing.fake_upstream import main

if __name__ == "__main__":
    sys.exit(main())
