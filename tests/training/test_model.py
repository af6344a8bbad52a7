"""The hierarchical model: the convolution form equals the seed notebook's pair-fusion form."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from training.model import HierarchicalModel, ModelConfig


def seed_form(model: HierarchicalModel, window: Tensor) -> Tensor:
    """The seed notebook's forward on one context window (B, 2**levels): view the sequence as
    consecutive pairs, Linear -> LayerNorm -> tanh, level after level, then the output Linear."""
    x = model.wte(window)  # (B, T, C)
    for level in model.levels:
        B, T, C = x.shape
        x = x.view(B, T // 2, 2 * C)  # pairs (x0,x1), (x2,x3), ...
        x = torch.tanh(level.norm(level.linear(x)))  # (B, T/2, H)
    return model.lm_head(x.squeeze(1))  # (B, V)


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(vocab_size=27, n_embd=12, hidden=(30, 30, 30, 40), dropout=0.0),  # the seed's
        ModelConfig(vocab_size=11, n_embd=8, hidden=(16, 24, 32), dropout=0.3),
        ModelConfig(vocab_size=27, n_embd=24, hidden=(160, 160, 160, 160), dropout=0.1),
    ],
)
def test_convolution_form_equals_seed_pair_form_at_every_position(config: ModelConfig) -> None:
    torch.manual_seed(0)
    model = HierarchicalModel(config).eval()
    ctx = model.context_length
    B, T = 5, ctx + 12
    idx = torch.randint(0, config.vocab_size, (B, T))
    idx[:, : ctx - 1] = 0  # left padding, as in training
    with torch.inference_mode():
        logits, _ = model(idx)  # (B, T - ctx + 1, V)
        assert logits.shape == (B, T - ctx + 1, config.vocab_size)
        for t in range(T - ctx + 1):
            expected = seed_form(model, idx[:, t : t + ctx])
            assert (logits[:, t] - expected).abs().max().item() <= 1e-5, f"position {t}"


def test_seed_settings_parameter_count() -> None:
    # embedding 27*12, levels (24->30, 60->30, 60->30, 60->40) with bias and LayerNorm, head 40->27
    model = HierarchicalModel(ModelConfig(vocab_size=27, n_embd=12, hidden=(30, 30, 30, 40)))
    assert model.num_parameters() == 8541
    assert model.context_length == 16


def test_loss_at_initialisation_is_near_uniform() -> None:
    torch.manual_seed(0)
    model = HierarchicalModel(ModelConfig(vocab_size=27))
    idx = torch.zeros(4, 16 + 5, dtype=torch.long)
    targets = torch.randint(0, 27, (4, 6))
    _, loss = model(idx, targets)
    assert loss is not None
    assert abs(loss.item() - math.log(27)) < 0.5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_embd": 0}, "n_embd"),
        ({"hidden": ()}, "hidden"),
        ({"hidden": (8, -1)}, "hidden"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_bad_config_names_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HierarchicalModel(ModelConfig(**kwargs))  # type: ignore[arg-type]
