"""PoolSwitch: a proxy that owns a pool of API keys and fails over between them."""

from __future__ import annotations

__version__ = "0.1.0"
