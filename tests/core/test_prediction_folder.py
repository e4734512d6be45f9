"""Prediction on new images: masks at the image's own size, with or without a long-side resize."""

import numpy as np
import torch

from mkdseg.core.model import SegOutput
from mkdseg.core.prediction.folder import segment
from mkdseg.core.prediction.segmenter import Segmenter


class LeftRight(torch.nn.Module):
    """Class 1 on the left half of whatever it is given, class 0 on the right."""

    def forward(self, x):
        w = x.shape[-1]
        left = (torch.arange(w) < w // 2).float().expand(x.shape[0], 1, x.shape[-2], w)
        logits = torch.cat([1 - left, left], 1)
        return SegOutput(logits, logits)


def test_segment_returns_the_image_size_with_and_without_resize():
    image = np.zeros((40, 80, 3), np.uint8)
    for long_side in (None, 32):
        mask = segment(Segmenter(LeftRight()), image, torch.device("cpu"), long_side)
        assert mask.shape == (40, 80)
        assert (mask[:, :38] == 1).all() and (mask[:, 42:] == 0).all()


def test_a_read_only_image_is_segmented_without_a_warning():
    import warnings

    image = np.zeros((16, 24, 3), np.uint8)
    image.flags.writeable = False  # as PIL-decoded arrays are
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mask = segment(Segmenter(LeftRight()), image, torch.device("cpu"))
    assert mask.shape == (16, 24)


def test_an_exported_graph_runs_where_its_weights_are_and_stays_as_loaded():
    from mkdseg.core.prediction.folder import place

    graph = torch.nn.Conv2d(3, 2, 1)  # stands for the module MLflow's pt2 loader returns
    placed, device = place(graph, torch.device("cpu"))
    assert placed is graph and device == torch.device("cpu")
    segmenter = Segmenter(LeftRight()).train()
    placed, _ = place(segmenter, torch.device("cpu"))
    assert placed is segmenter and not placed.training
