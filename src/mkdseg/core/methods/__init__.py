"""The methods: one file each, with its equation, its published values and its record.

``supervised.py``, ``mean_teacher.py``, ``cps.py``, ``mkd.py`` and ``unimatch.py`` each
declare ``METHOD`` (``record.Method``: its networks, its data, the switches that fix it, its
published values and its ``loss``), built from the shared pieces (``core/views.py``,
``core/targets.py``, ``core/consistency.py``, ``core/losses.py``). The switches every method
is configured with are ``MethodConfig`` (``mkd.py``, whose defaults are the MKD release's).
Adding a method is a file here, its line in ``METHODS`` and its conf block
``training.<method>``.
"""

from __future__ import annotations

import dataclasses

from mkdseg.core.methods import cps, mean_teacher, mkd, supervised, unimatch
from mkdseg.core.methods.mkd import MAX_CONSISTENCY_SCALE, MethodConfig
from mkdseg.core.methods.record import SHARED_BLOCK, Method

METHODS: dict[str, Method] = {
    m.METHOD.name: m.METHOD for m in (supervised, mean_teacher, cps, mkd, unimatch)
}
MKD = mkd.METHOD
SWITCHES = frozenset(f.name for f in dataclasses.fields(MethodConfig)) - {"name"}

__all__ = [
    "MAX_CONSISTENCY_SCALE",
    "METHODS",
    "MKD",
    "SHARED_BLOCK",
    "SWITCHES",
    "Method",
    "MethodConfig",
    "method_named",
]


def method_named(name: str) -> Method:
    """The record of ``training.method``."""
    if name not in METHODS:
        raise ValueError(f"training.method must be one of {', '.join(METHODS)}, got {name!r}")
    return METHODS[name]
