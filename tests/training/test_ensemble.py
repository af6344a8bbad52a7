"""python -m training ensemble: members trained apart become one checkpoint whose next-character
distribution is the mean of theirs, with the checkpoint contract (step agrees with forward, the
service loads it), metrics measured again as one model, and the members' training recorded."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from app.inference.checkpoint import load_checkpoint
from tests.conftest import load_parts
from training.__main__ import main
from training.config import TrainConfig
from training.data import Encoded, evaluate, split_items
from training.export import load_trained
from training.model import Ensemble
from training.train import run

TINY = ["--n-embd", "8", "--hidden", "16,16,16,16", "--steps", "40", "--eval-interval", "20",
        "--batch-size", "32", "--threads", "1", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def members(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("members")
    paths = []
    for seed in (1, 2):
        args = ["train", "--corpus", str(small_corpus), "--name", f"m{seed}", "--out", str(out / str(seed))]
        assert main([*args, *TINY, "--train-seed", str(seed)]) == 0
        paths.append(out / str(seed) / f"m{seed}.pt")
    return paths


def test_members_differ_by_train_seed_but_share_the_split(members: list[Path]) -> None:
    (a, meta_a, _), (b, meta_b, _) = (load_trained(p) for p in members)
    assert meta_a["metrics"]["split"] == meta_b["metrics"]["split"]
    assert not torch.equal(a.state_dict()["wte.weight"], b.state_dict()["wte.weight"])


def test_the_ensemble_is_the_mean_of_its_members_probabilities(
    members: list[Path], small_corpus: Path, tmp_path: Path
) -> None:
    assert main(["ensemble", *map(str, members), "--corpus", str(small_corpus), "--name", "pair",
                 "--out", str(tmp_path)]) == 0  # fmt: skip
    path = tmp_path / "pair.pt"
    module, meta, items = load_parts(path)
    singles = [load_trained(p)[0] for p in members]
    ctx = meta["context_length"]
    idx = torch.randint(1, len(meta["vocab"]), (5, ctx))
    with torch.inference_mode():
        mean = torch.stack([F.softmax(m(idx)[0][:, -1], dim=-1) for m in singles]).mean(0)
        assert torch.allclose(F.softmax(module(idx), dim=-1), mean, atol=1e-6)
    # metrics measured again, as one model, on the members' own split
    model, _, _ = load_trained(path)
    assert isinstance(model, Ensemble)
    corpus_items = (small_corpus.read_text()).split()
    test = split_items(corpus_items, 0.1, 0.1, TrainConfig().seed).test
    stoi = {c: i for i, c in enumerate(meta["vocab"])}
    assert math.isclose(meta["metrics"]["test_loss"], evaluate(model, Encoded(test, stoi, ctx)), rel_tol=1e-6)
    assert len(meta["metrics"]["members"]) == 2 and meta["architecture"]["type"] == "ensemble"
    assert meta["parameters"] == sum(load_trained(p)[1]["parameters"] for p in members)
    recorded = [m["training"]["chain_wall_time_s"] for m in meta["training"]["members"]]
    assert meta["training"]["wall_time_s"] == pytest.approx(max(recorded), abs=0.2)
    assert meta["training"]["core_time_s"] == pytest.approx(sum(recorded), abs=0.2)
    assert set(items) >= set(corpus_items)
    report = json.loads((tmp_path / "pair.metrics.json").read_text())
    assert report["metrics"] == meta["metrics"]
    assert (tmp_path / "pair.loss.png").read_bytes()[:4] == b"\x89PNG"
    # the service loads it: step agrees with forward at every position of its probe
    loaded = load_checkpoint(path, allow_unverified=True)
    assert loaded.incremental and loaded.meta["parameters"] == meta["parameters"]


def test_members_trained_without_other_corpora_held_out_names_are_measured_on_what_they_trained_on(
    small_corpus: Path, tmp_path: Path
) -> None:
    from training.data import held_out_of, read_items

    items, _ = read_items(small_corpus)
    other = tmp_path / "other.txt"  # a corpus that holds out some of this one's training names
    other.write_text("\n".join(items[::2]) + "\n")
    listed = f"{small_corpus},{other}"
    paths = []
    for seed in (1, 2):
        args = ["train", "--corpus", str(small_corpus), "--name", f"m{seed}", "--out", str(tmp_path)]
        assert main([*args, *TINY, "--train-seed", str(seed), "--exclude-held-out", listed]) == 0
        paths.append(tmp_path / f"m{seed}.pt")
    assert main(["ensemble", *map(str, paths), "--corpus", str(small_corpus), "--name", "pair",
                 "--out", str(tmp_path)]) == 0  # fmt: skip
    meta = load_parts(tmp_path / "pair.pt")[1]
    own = split_items(items, 0.1, 0.1, TrainConfig().seed)
    trained_on = own.without_in_training(held_out_of((str(other),), 0.1, 0.1, TrainConfig().seed)).train
    assert 0 < len(trained_on) < len(own.train)
    assert meta["metrics"]["split"]["sizes"] == [len(trained_on), len(own.val), len(own.test)]
    model, _, _ = load_trained(tmp_path / "pair.pt")
    stoi, ctx = {c: i for i, c in enumerate(meta["vocab"])}, meta["context_length"]
    for part, names in (("train", trained_on), ("test", own.test)):
        assert math.isclose(
            meta["metrics"][f"{part}_loss"], evaluate(model, Encoded(names, stoi, ctx)), rel_tol=1e-6
        )


def test_bad_members_are_refused_with_one_line(
    members: list[Path], small_corpus: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.txt"
    other.write_text("\n".join(small_corpus.read_text().split()[:200]) + "\n")
    for args, message in [
        ([str(members[0])], "at least two members"),
        ([*map(str, members), "--corpus", str(other)], "was trained on"),
        ([*map(str, members), "--name", "Bad Name"], "--name must be a model name"),
    ]:
        argv = ["ensemble", *args] + ([] if "--corpus" in args else ["--corpus", str(small_corpus)])
        argv += [] if "--name" in args else ["--name", "pair"]
        assert main([*argv, "--out", str(tmp_path / "out")]) == 2, message
        assert not (tmp_path / "out").exists()


def test_init_refuses_an_ensemble(members: list[Path], small_corpus: Path, tmp_path: Path) -> None:
    assert main(["ensemble", *map(str, members), "--corpus", str(small_corpus), "--name", "pair",
                 "--out", str(tmp_path)]) == 0  # fmt: skip
    cfg = TrainConfig(
        corpus=str(small_corpus), name="x", out=str(tmp_path / "x"), init=str(tmp_path / "pair.pt"),
        n_embd=8, hidden=(16, 16, 16, 16), steps=2, progress=False,
    )  # fmt: skip
    with pytest.raises(ValueError, match="is an ensemble"):
        run(cfg)
