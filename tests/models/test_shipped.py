"""The shipped checkpoints in models/: they meet the contract, and their incremental step() gives
the same logits as forward() at every position."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import load_parts

MODELS = Path(__file__).resolve().parents[2] / "models"
SHIPPED = sorted(MODELS.glob("*.pt"))


def test_the_four_models_are_shipped() -> None:
    assert sorted(p.stem for p in SHIPPED) == ["names", "names-female", "names-male", "surnames"]


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_step_equals_forward_at_every_position(path: Path) -> None:
    module, meta, _ = load_parts(path)
    ctx, V = int(meta["context_length"]), len(meta["vocab"])  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(0)
    B, T = 32, 2 * ctx + 5  # longer than the context: the queues must forget what falls out of it
    tokens = torch.randint(0, V, (B, T), generator=gen)
    with torch.inference_mode():
        state = module.init_state(B)
        seen = torch.zeros(B, 1, dtype=torch.long)  # the start boundary
        logits, state = module.step(seen[:, 0], state)
        for t in range(T):
            full = module(seen)
            assert (logits - full).abs().max().item() <= 1e-5, f"{path.name}: position {t}"
            logits, state = module.step(tokens[:, t], state)
            seen = torch.cat([seen, tokens[:, t : t + 1]], dim=1)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_metadata_matches_the_corpus_and_the_target(path: Path) -> None:
    _, meta, items = load_parts(path)
    corpora = json.loads((MODELS.parent / "resources" / "corpora.json").read_text())
    corpus = meta["corpus"]
    assert isinstance(corpus, dict)
    assert corpus["sha256"] == corpora[path.stem]["sha256"]
    assert corpus["items"] == corpora[path.stem]["items"] == len(items)
    assert meta["name"] == path.stem and meta["format_version"] == 2
    assert int(meta["parameters"]) <= 250_000  # type: ignore[call-overload]
    metrics = meta["metrics"]
    assert isinstance(metrics, dict)
    assert metrics["train_loss"] < metrics["val_loss"] < 2.5
    report = json.loads(path.with_suffix(".metrics.json").read_text())
    assert report["metrics"] == metrics  # the metrics JSON beside the checkpoint is the same run
    assert path.with_suffix(".loss.png").read_bytes()[:4] == b"\x89PNG"
