"""Scoring unlabeled images: per-pixel entropy and disagreement on known probabilities, image
scores, and a pool ranked by networks that agree on some images and disagree on others."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from mkdseg.core.acquisition import (
    ScoreSettings,
    image_scores,
    pixel_scores,
    same_size_batches,
    score_pool,
)
from mkdseg.core.model import SegOutput

SURE = 20.0  # a logit gap that makes a softmax one-hot to float precision
PIXELS = 1 << 20


def _probs(*per_network: list[float]) -> torch.Tensor:
    """(K, 1, C, 1, 1) probabilities, one list of class probabilities per network."""
    return torch.tensor(per_network, dtype=torch.float64)[:, None, :, None, None]


def test_entropy_is_log_c_for_uniform_and_zero_for_one_hot() -> None:
    assert pixel_scores(_probs([0.25] * 4), "entropy").item() == pytest.approx(math.log(4))
    assert pixel_scores(_probs([1.0, 0.0, 0.0]), "entropy").item() == pytest.approx(0.0)


def test_disagreement_is_zero_where_networks_agree_however_unsure() -> None:
    agree = _probs([0.5, 0.5], [0.5, 0.5])
    assert pixel_scores(agree, "entropy").item() == pytest.approx(math.log(2))
    assert pixel_scores(agree, "disagreement").item() == pytest.approx(0.0)


def test_disagreement_is_log_2_for_two_sure_networks_on_different_classes() -> None:
    opposite = _probs([1.0, 0.0], [0.0, 1.0])
    assert pixel_scores(opposite, "disagreement").item() == pytest.approx(math.log(2))


def test_disagreement_needs_two_networks() -> None:
    with pytest.raises(ValueError, match="two networks or more"):
        pixel_scores(_probs([0.5, 0.5]), "disagreement")


def test_image_score_averages_all_pixels_or_the_most_uncertain_share() -> None:
    pixels = torch.tensor([[[0.0, 0.0], [1.0, 3.0]]])  # (1, 2, 2)
    assert image_scores(pixels, 1.0).item() == pytest.approx(1.0)
    assert image_scores(pixels, 0.5).item() == pytest.approx(2.0)
    assert image_scores(pixels, 0.1).item() == pytest.approx(3.0)  # at least one pixel


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("score", "margin"),
        ("top_share", 0.0),
        ("top_share", 1.5),
        ("propose", -1),
        ("batch_pixels", 0),
    ],
)
def test_bad_settings_name_the_parameter(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"labelling.{field}"):
        ScoreSettings(**{field: value})


class _Opinion(nn.Module):
    """Predicts from each image's red level (0, 128 or 255 before normalisation): class 0 sure,
    50/50, or class ``dark_class`` sure, the same everywhere in the image."""

    def __init__(self, dark_class: int) -> None:
        super().__init__()
        self.dark_class = dark_class

    def forward(self, x: torch.Tensor) -> SegOutput:
        red = x[:, 0].mean(dim=(1, 2))  # normalised: about -2.1 dark, 0.1 mid, 2.2 bright
        logits = torch.zeros(x.shape[0], 2, *x.shape[-2:])
        logits[red < -1, self.dark_class] = SURE
        logits[red > 1, 0] = SURE
        return SegOutput(logits, logits)


def _pool() -> list[tuple[torch.Tensor, int, tuple[int, int]]]:
    """Index 0: bright (both networks: class 0, sure), 1: mid (both 50/50), 2: dark (network 1
    says class 0, network 2 class 1, both sure)."""
    return [
        (torch.full((3, 4, 6), red, dtype=torch.uint8), index, (4, 6))
        for index, red in enumerate((255, 128, 0))
    ]


@pytest.mark.parametrize(
    ("score", "first", "last"),
    [("entropy", {1, 2}, 0), ("disagreement", {2}, {0, 1})],
)
def test_the_pool_ranks_what_the_networks_disagree_on_or_are_unsure_of(score, first, last):
    networks = [_Opinion(dark_class=0), _Opinion(dark_class=1)]
    settings = ScoreSettings(score=score, propose=1, batch_size=3, precision="fp32")
    scored = score_pool(
        networks, same_size_batches(_pool(), 3, PIXELS), 3, 2, settings, torch.device("cpu")
    )
    ranking = scored.ranking().tolist()
    assert ranking[0] in first
    assert ranking[-1] in (last if isinstance(last, set) else {last})
    assert list(scored.proposals) == [ranking[0]]
    assert scored.proposals[ranking[0]].shape == (4, 6)


def test_class_shares_and_proposed_masks_come_from_the_mean_prediction() -> None:
    networks = [_Opinion(dark_class=1), _Opinion(dark_class=1)]  # agree: dark image is class 1
    settings = ScoreSettings(score="entropy", propose=3, batch_size=2, precision="fp32")
    batches = same_size_batches(_pool(), 2, PIXELS)
    scored = score_pool(networks, batches, 3, 2, settings, torch.device("cpu"))
    assert scored.class_shares[2].tolist() == [0.0, 1.0]
    assert scored.class_shares[0].tolist() == [1.0, 0.0]
    assert (scored.proposals[2] == 1).all() and (scored.proposals[0] == 0).all()
    assert list(scored.proposals)[0] == 1  # 50/50: the most uncertain image, first
    assert scored.scores[1] == pytest.approx(math.log(2), abs=1e-6)


def test_same_size_batches_split_on_size_batch_size_and_pixels() -> None:
    shapes = [(4, 4), (4, 4), (4, 4), (5, 4), (4, 4)]
    items = [(torch.zeros(3, *hw), i, (2 * hw[0], 2 * hw[1])) for i, hw in enumerate(shapes)]
    batches = list(same_size_batches(items, 2, PIXELS))
    assert [b.indices.tolist() for b in batches] == [[0, 1], [2], [3], [4]]
    assert tuple(batches[2].images.shape) == (1, 3, 5, 4)
    assert batches[2].sizes.tolist() == [[10, 8]]
    by_pixels = list(same_size_batches(items[:3], 16, 2 * 16))  # two 4 x 4 images per pass
    assert [b.indices.tolist() for b in by_pixels] == [[0, 1], [2]]
    huge = list(same_size_batches(items[:2], 16, 1))  # an image over the budget: one at a time
    assert [b.indices.tolist() for b in huge] == [[0], [1]]


def test_proposed_masks_have_each_image_size_on_disk() -> None:
    """Scored at a reduced size (long_side), the proposal comes back at the file's size."""
    networks = [_Opinion(dark_class=1)]
    settings = ScoreSettings(score="entropy", propose=3, precision="fp32")
    items = [(image, index, (8, 12)) for image, index, _ in _pool()]
    scored = score_pool(
        networks, same_size_batches(items, 4, PIXELS), 3, 2, settings, torch.device("cpu")
    )
    assert {mask.shape for mask in scored.proposals.values()} == {(8, 12)}
    assert (scored.proposals[2] == 1).all()


def test_every_pool_image_is_scored_once() -> None:
    settings = ScoreSettings(score="entropy", precision="fp32")
    networks = [_Opinion(dark_class=0)]
    scored = score_pool(
        networks, same_size_batches(_pool(), 16, PIXELS), 3, 2, settings, torch.device("cpu")
    )
    assert np.isfinite(scored.scores).all() and scored.scores.shape == (3,)
    with pytest.raises(ValueError, match="1 of 4 pool images were not scored"):
        score_pool(
            networks, same_size_batches(_pool(), 16, PIXELS), 4, 2, settings, torch.device("cpu")
        )
