"""Package faces whose names load on first use (PEP 562), as pluggy and anyio do.

A face lists each public name and the module that defines it; the module is
imported when the name is first looked up, and the name is then kept in the
face, so the next lookup is a plain one. Importing a face therefore costs
nothing: ``import venom.plugins`` reaches the bus face without loading
nats-py, and ``venom --help`` the CLI face without loading the arbiter.

This module imports nothing of venom: every layer's face may use it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_face(
    face: str, where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of package ``face`` for the names in ``where``."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {face!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[face], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[face]), *where})

    return __getattr__, __dir__
