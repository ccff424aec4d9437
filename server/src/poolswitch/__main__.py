"""`python -m poolswitch` is the `poolswitch` command."""

from __future__ import annotations

import sys

from poolswitch.cli import main

sys.exit(main())
