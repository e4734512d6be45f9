"""The supervised baseline: the labeled images only, ``L = CE_sup(x_l)``.

One network (``students=1``), no unlabeled images, no teacher: the lower bound every
semi-supervised method is measured against (and, with every label, the upper bound).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from mkdseg.core.losses import supervised_ce
from mkdseg.core.methods.record import NO_CONSISTENCY, Method

if TYPE_CHECKING:
    from mkdseg.core.methods.mkd import MethodConfig
    from mkdseg.core.networks import Networks
    from mkdseg.core.views import Views


def loss(
    nets: Networks, views: Views, method: MethodConfig, t: int
) -> tuple[Tensor, dict[str, Tensor | float]]:
    """Mean cross-entropy of each network on the labeled images, summed over networks."""
    loss_sup = sum(supervised_ce(o.logits, views.labels) for o in nets.student_pair(views.labeled))
    return loss_sup, {"loss": loss_sup, "loss_sup": loss_sup}


METHOD = Method(
    "supervised",
    "Supervised baseline (labeled images only)",
    students=1,
    teachers=False,
    unlabeled=False,
    loss=loss,
    fixed=NO_CONSISTENCY,
)
