"""Dataclass fields that check themselves: a string field limited to its choices, and rules.

Each configuration dataclass checks its own values when built (``check`` in ``__post_init__``),
naming the field, so a configuration that exists is valid.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any


def choice(default: str, options: tuple[str, ...]) -> Any:
    """A string field that must be one of ``options`` (``check`` enforces it)."""
    return field(default=default, metadata={"choices": options})


def check(config: Any, *rules: tuple[bool, str]) -> None:
    """Raise, naming the field, on a choice outside its options or on the first broken rule."""
    for f in dataclasses.fields(config):
        options, value = f.metadata.get("choices"), getattr(config, f.name)
        if options is not None and value not in options:
            raise ValueError(f"{f.name} must be one of {', '.join(options)}, got {value!r}")
    for ok, message in rules:
        if not ok:
            raise ValueError(message)
