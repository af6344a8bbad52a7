"""The shipped checkpoints in models/: they meet the contract, and their incremental step() gives
the same logits as forward() at every position."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import load_parts
from tests.support import MODELS, RESOURCES
from training.corpus import neutral_names, read_era

SHIPPED = sorted(MODELS.glob("*.pt"))


def test_the_five_models_are_shipped() -> None:
    assert sorted(p.stem for p in SHIPPED) == ["names", "names-era", "names-female", "names-male", "surnames"]


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_step_equals_forward_at_every_position(path: Path) -> None:
    module, meta, _ = load_parts(path)
    ctx, V = int(meta["context_length"]), len(meta["vocab"])  # type: ignore[arg-type]
    if "conditions" in meta:  # condition tokens may stand anywhere a token may
        V += len(meta["conditions"]["tokens"])  # type: ignore[index, arg-type]
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
    corpora = json.loads((RESOURCES / "corpora.json").read_text())
    corpus = meta["corpus"]
    assert isinstance(corpus, dict)
    assert corpus["sha256"] == corpora[path.stem]["sha256"]
    assert corpus["items"] == corpora[path.stem]["items"]
    # items.txt, what `novel` leaves out: for the given-name models, every name of every year,
    # 1880-2024 (the default models learnt every year's names first; the era corpus holds them
    # all); else the corpus
    if "conditions" in meta:
        era, _ = read_era(RESOURCES / "names-era.tsv.gz")
        assert set(items) == {it.name for it in era}
        # the real names /score calls gender-neutral: the rule applied to the same corpus
        assert meta["neutral"]["names"] == neutral_names(era) and "a third" in meta["neutral"]["rule"]
    elif path.stem in ("names", "names-female", "names-male"):
        every_year = (RESOURCES / "names-all.txt").read_text().split()
        assert set(items) == set(every_year)
    else:
        assert corpus["items"] == len(items)
    assert meta["name"] == path.stem and meta["format_version"] == 2
    assert int(meta["parameters"]) <= 1_000_000  # type: ignore[call-overload]
    metrics = meta["metrics"]
    assert isinstance(metrics, dict)
    assert metrics["test_loss"] < 2.5
    report = json.loads(path.with_suffix(".metrics.json").read_text())
    assert report["metrics"] == metrics  # the metrics JSON beside the checkpoint is the same run
    assert path.with_suffix(".loss.png").read_bytes()[:4] == b"\x89PNG"


# the products of one step of the model shipped before (24 / 160 x 4): the budget is 4 times this
BASELINE_STEP_FLOPS = 2 * (2 * 24 * 160 + 3 * 2 * 160 * 160 + 160 * 27)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_a_name_costs_at_most_four_times_the_products_of_the_model_before(path: Path) -> None:
    module, _, _ = load_parts(path)
    flops = sum(
        2 * p.numel()
        for name, p in module.named_parameters()
        if name.endswith(".weight") and p.dim() == 2 and "wte." not in f".{name}"
    )
    assert flops <= 4 * BASELINE_STEP_FLOPS, (path.name, flops / BASELINE_STEP_FLOPS)


def test_the_era_model_generates_names_of_the_decade_asked_for() -> None:
    """What users of names-era rely on: a girl's name of the 1920s is far more often a name whose
    heyday was the 1920s than one whose heyday was a century later (a name's heyday, or peak
    decade: where it took its largest share of that sex's births)."""
    from app.inference.batches import sample_names
    from app.inference.checkpoint import load_checkpoint
    from app.inference.engine import Start
    from app.inference.sampling import SampleSpec
    from training.evaluate import near, peak_decades

    model = load_checkpoint(MODELS / "names-era.pt")
    peaks, _ = peak_decades(RESOURCES / "names-era.tsv.gz")
    for sex, decade, other in [("F", 1920, 2010), ("M", 2010, 1920), ("F", 1980, 1890)]:
        start = model.start_of({"sex": sex, "decade": decade})
        names = sample_names(model, SampleSpec(n=300, unique=False, start=Start(start)), 1).names
        real = [peaks[sex][n] for n in names if n in peaks[sex]]
        here = sum(near(p, decade) for p in real) / len(real)
        there = sum(near(p, other) for p in real) / len(real)
        assert here > there + 0.2, (sex, decade, here, there)
