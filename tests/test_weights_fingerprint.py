"""scripts/weights_fingerprint.py: the hash sees every bit of every tensor, and nothing else."""

from __future__ import annotations

import torch

from .conftest import load_script


def _state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "conv.weight": torch.randn(4, 3, 3, 3, generator=g),
        "bn.num_batches_tracked": torch.tensor(7),  # a 0-d integer tensor, as BatchNorm keeps
        "head.bias": torch.randn(5, generator=g).to(torch.bfloat16),
    }


def test_equal_states_hash_equal_whatever_the_key_order() -> None:
    fp = load_script("weights_fingerprint")
    state = _state()
    reordered = dict(reversed(list(state.items())))
    assert fp.weights_sha256(state) == fp.weights_sha256(reordered)
    assert len(fp.weights_sha256(state)) == 64


def test_one_flipped_bit_changes_the_hash() -> None:
    fp = load_script("weights_fingerprint")
    state = _state()
    before = fp.weights_sha256(state)
    flipped = state["conv.weight"].clone()
    flipped.view(torch.int32).view(-1)[5] ^= 1  # the lowest mantissa bit of one weight
    assert fp.weights_sha256({**state, "conv.weight": flipped}) != before
    counter = {**state, "bn.num_batches_tracked": torch.tensor(8)}
    assert fp.weights_sha256(counter) != before


def test_dtype_and_shape_are_part_of_the_hash() -> None:
    fp = load_script("weights_fingerprint")
    state = _state()
    before = fp.weights_sha256(state)
    flat = {**state, "conv.weight": state["conv.weight"].reshape(4, 27)}  # same bytes
    assert fp.weights_sha256(flat) != before
    as_half = {**state, "head.bias": state["head.bias"].view(torch.float16)}  # same bytes
    assert fp.weights_sha256(as_half) != before
