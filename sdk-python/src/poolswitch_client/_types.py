"""Type aliases used in the public signatures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

PrimitiveData: TypeAlias = str | int | float | bool | None
HeaderTypes: TypeAlias = Mapping[str, str]
QueryParamTypes: TypeAlias = Mapping[str, PrimitiveData | Sequence[PrimitiveData]]
RequestContent: TypeAlias = bytes | str
