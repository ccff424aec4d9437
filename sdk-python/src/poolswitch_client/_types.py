"""Type aliases used in the public signatures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

PrimitiveData: TypeAlias = str | int | float | bool | None
HeaderTypes: TypeAlias = Mapping[str, str]
QueryParamTypes: TypeAlias = Mapping[str, PrimitiveData | Sequence[PrimitiveData]]
RequestContent: TypeAlias = bytes | str


class UseClientDefault:
    """The type of `USE_CLIENT_DEFAULT`: a per-call option left to the client's setting.

    It lets `None` mean something of its own in a call (`timeout=None`: no deadline for this
    call, `pool=None`: no pool header for this call).
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "USE_CLIENT_DEFAULT"


USE_CLIENT_DEFAULT = UseClientDefault()
