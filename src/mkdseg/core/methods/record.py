"""What a method is, as data: the record each method file declares (``METHOD``).

A record says which networks a method trains, whether it uses unlabeled images, the switches
that define it (``fixed``: nothing overrides them), its published values (``defaults``, cited
in its file) and its ``loss``. The switches themselves are ``MethodConfig`` (``mkd.py``: every
method here is written over MKD's switches and the pieces they select).

A method's switches, lowest first: ``MethodConfig``'s defaults (the MKD release), the record's
published values, the block ``training.consistency`` (what every method shares), the method's
own block ``training.<method>``. A switch set in either block that contradicts a fixed one is
an error naming both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

SHARED_BLOCK = "consistency"  # training.consistency: the switches every method shares
# The switches of a method without MKD's consistency terms (it writes its own, or none).
NO_CONSISTENCY = {
    "teacher_term": False,
    "student_term": False,
    "feature_aug_students": False,
    "feature_aug_teachers": False,
}


@dataclass(frozen=True)
class Method:
    """One method: its networks, its data, the switches that define it, its published values
    and its loss."""

    name: str
    title: str  # how a run description names it
    students: int  # networks trained (each with an EMA teacher when ``teachers``)
    teachers: bool  # EMA teachers teach the students (L_st), unless teacher_term is switched off
    unlabeled: bool  # trains on unlabeled images
    # loss(nets, views, method, t) -> (loss, metrics): the method's equation for step t.
    loss: Callable[..., Any]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    strong_views: int = 1  # strong views of each unlabeled image, each CutMix-ed on its own
    estimators: bool = False  # class feature statistics, for feature augmentation of targets

    def switches(self, shared: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
        """The method's switches from the shared block and its own block (see the module doc)."""
        user = {**shared, **own}
        for key, value in self.fixed.items():
            if key in user and user[key] != value:
                block = self.name if key in own else SHARED_BLOCK
                raise ValueError(
                    f"training.{block}.{key}: {user[key]!r} contradicts training.method: "
                    f"{self.name}, which fixes {key}: {value!r} (core/methods/); train method "
                    "mkd with its switches to change it"
                )
        return {**self.defaults, **user, **self.fixed, "name": self.name}
