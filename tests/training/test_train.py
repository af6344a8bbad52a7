"""Training: a tiny model learns, the run is reproducible, and bad input writes nothing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tests.conftest import era_sample, read_checkpoint, world_sample
from training.__main__ import main
from training.config import TrainConfig
from training.corpus import read_items
from training.countries import CODES
from training.data import split_items
from training.train import train_model

TINY = dict(
    n_embd=8,
    hidden=(16, 16, 16),
    dropout=0.0,
    steps=150,
    batch_size=32,
    eval_interval=50,
    warmup_steps=10,
    progress=False,
    threads=1,
)


def test_tiny_model_learns(small_corpus: Path) -> None:
    items, _ = read_items(small_corpus)
    result = train_model(TrainConfig(corpus=str(small_corpus), name="tiny", **TINY), items)
    m = result.metrics
    uniform = math.log(len(result.vocab))
    first_val = result.history[0]["val_loss"]
    assert m["val_loss"] <= first_val  # best weights kept, never worse than the first check
    assert m["train_loss"] < uniform - 0.5  # clearly below guessing
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert m["split"]["sizes"] == [320, 40, 40]
    assert result.vocab[0] == "." and result.vocab[1:] == sorted(set("".join(items)))


def test_same_seed_same_result(small_corpus: Path) -> None:
    items, _ = read_items(small_corpus)
    cfg = TrainConfig(corpus=str(small_corpus), name="tiny", **{**TINY, "steps": 40, "eval_interval": 20})
    a, b = train_model(cfg, items), train_model(cfg, items)
    assert a.metrics == b.metrics
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    cfg.seed = 7
    c = train_model(cfg, items)
    assert c.split.test != a.split.test


def test_split_is_by_item_and_disjoint() -> None:
    items = [f"n{i}" for i in range(100)]
    s = split_items(items, 0.1, 0.1, seed=3)
    assert (len(s.train), len(s.val), len(s.test)) == (80, 10, 10)
    assert sorted(s.train + s.val + s.test) == sorted(items)
    assert split_items(items, 0.1, 0.1, seed=3) == s


def test_cli_writes_checkpoint_metrics_and_plot(
    small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "models"
    code = main(
        [
            "train",
            "--corpus",
            str(small_corpus),
            "--name",
            "tiny",
            "--out",
            str(out),
            "--n-embd",
            "8",
            "--hidden",
            "16,16,16",
            "--steps",
            "60",
            "--batch-size",
            "32",
            "--eval-interval",
            "30",
            "--no-progress",
            "--threads",
            "1",
        ]
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "SHA256SUMS",
        "tiny.loss.png",
        "tiny.metrics.json",
        "tiny.pt",
    ]
    report = json.loads((out / "tiny.metrics.json").read_text())
    assert report["metrics"]["test_loss"] > 0 and len(report["history"]) == 2
    assert (out / "tiny.loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "tiny.pt: " in capsys.readouterr().out


def _ten(tmp_path: Path, n: int) -> Path:
    p = tmp_path / f"c{n}.txt"
    p.write_text("".join(f"name{chr(97 + i)}\n" for i in range(n)))
    return p


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda t: ["--corpus", str(t / "missing.txt")], "corpus file not found"),
        (lambda t: ["--corpus", str(t)], "is a directory"),
        (lambda t: ["--corpus", str(_ten(t, 0))], "is empty"),
        (lambda t: ["--corpus", str(_ten(t, 9))], "at least 10"),
        (lambda t: ["--corpus", str(_ten(t, 12)), "--n-embd", "-4"], "n_embd must be a positive"),
        (lambda t: ["--corpus", str(_ten(t, 12)), "--steps", "0"], "--steps must be a positive"),
        (lambda t: ["--corpus", str(_ten(t, 12)), "--val-fraction", "0.01"], "leaves an empty part"),
        (
            lambda t: ["--corpus", str(_ten(t, 12)), "--val-fraction", "0.5", "--test-fraction", "0.5"],
            "must leave a training part",
        ),
        (lambda t: ["--corpus", str(_ten(t, 12)), "--name", "../evil"], "--name must be"),
    ],
)
def test_bad_input_one_line_error_nothing_written(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make_args,
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    out = tmp_path / "models"
    code = main(["train", "--out", str(out), "--no-progress", "--steps", "5", *make_args(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_bad_hidden_flag_is_rejected_by_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "--hidden", "16,-3"])
    assert info.value.code == 2
    assert "--hidden" in capsys.readouterr().err


def test_a_conditioned_corpus_is_split_by_name_and_reports_by_condition(tmp_path: Path) -> None:
    from training.corpus import read_era
    from training.data import Corpus

    items, _ = read_era(era_sample(tmp_path, 60))
    cfg = TrainConfig(name="era", **{**TINY, "steps": 20, "eval_interval": 10, "hidden": (16, 16, 16, 16)})
    result = train_model(cfg, Corpus.of_era(items))
    train, held = set(result.split.train), set(result.split.val) | set(result.split.test)
    assert train and held and not train & held  # no name on both sides, under any sex or decade
    by = result.metrics["test_loss_by_condition"]
    assert set(by) == {"F", "M"} and "1920" in by["F"]
    assert result.space is not None and len(result.space) == 47  # 3 x 16 - 1 (decades 1880-2020)
    assert result.model.wte.num_embeddings == len(result.vocab) + 47


def test_the_world_corpus_trains_a_model_conditioned_on_sex_and_country(tmp_path: Path) -> None:
    from app.inference.checkpoint import load_checkpoint
    from training.train import run

    corpus = world_sample(tmp_path, 400)
    quick = {**TINY, "steps": 20, "eval_interval": 10, "hidden": (16, 16, 16, 16)}
    meta = run(
        TrainConfig(
            corpus=str(corpus), name="world", out=str(tmp_path / "m"), conditions="sex,country", **quick
        )
    )
    assert {"א", "я", "ø", "é"} <= set(meta["vocab"])  # Hebrew, Cyrillic, Danish, French letters
    conditions = meta["conditions"]
    assert conditions["factors"]["country"] == list(CODES) and conditions["factors"]["sex"] == ["F", "M"]
    assert conditions["fields"]["country"] == {"factor": "country", "values": list(CODES)}
    assert len(conditions["tokens"]) == 3 * (len(CODES) + 1) - 1
    by = meta["metrics"]["test_loss_by_condition"]
    assert set(by) == {"F", "M"} and set(by["F"]) <= set(CODES) and "RU" in by["M"]
    # the service loads it (its checks run every condition's steps against forward)
    loaded = load_checkpoint(tmp_path / "m" / "world.pt")
    assert loaded.conditions is not None and "country" in loaded.conditions.fields
    _, extra = read_checkpoint(tmp_path / "m" / "world.pt")
    items = extra["items.txt"].splitlines()
    assert any("а" <= name[0] <= "я" for name in items) and any("א" <= name[0] <= "ת" for name in items)


def test_a_one_country_model_keeps_the_whole_corpus_split(tmp_path: Path) -> None:
    """--countries trains on one country's names, tested on the names the shared model holds out."""
    from training.corpus import read_world
    from training.data import Corpus

    items, _ = read_world(world_sample(tmp_path, 50))
    quick = {**TINY, "steps": 10, "eval_interval": 10, "hidden": (16, 16, 16, 16)}
    shared = train_model(TrainConfig(name="world", conditions="sex,country", **quick), Corpus.of_world(items))
    french = train_model(
        TrainConfig(name="fr", conditions="sex", countries=("FR",), **quick), Corpus.of_world(items)
    )
    names_fr = {it.name for it in items if it.country == "FR"}
    for part in ("train", "val", "test"):
        assert set(getattr(french.split, part)) == set(getattr(shared.split, part)) & names_fr
    assert set(french.vocab) < set(shared.vocab) and "я" not in french.vocab
    with pytest.raises(ValueError, match="--countries must be distinct codes of AT, AU"):
        TrainConfig(name="x", countries=("FR", "XX")).validate()
    with pytest.raises(ValueError, match="applies to a corpus whose items have a country"):
        train_model(TrainConfig(name="x", countries=("FR",), **quick), [f"name{c}" for c in "abcdefghijkl"])


def test_conditions_the_corpus_does_not_give_are_refused(tmp_path: Path) -> None:
    from training.train import run

    corpus = str(world_sample(tmp_path, 400))
    with pytest.raises(ValueError, match="gives its items sex, country, not decade"):
        run(TrainConfig(corpus=corpus, name="world", out=str(tmp_path / "m"), **{**TINY, "steps": 1}))
    assert not (tmp_path / "m").exists()


def test_share_weighting_gives_every_sex_and_decade_the_same_weight(tmp_path: Path) -> None:
    from training.corpus import read_era
    from training.data import Corpus

    items, _ = read_era(era_sample(tmp_path, 20))
    cfg = TrainConfig(name="era", weighting="share", **{**TINY, "steps": 10, "eval_interval": 10})
    result = train_model(cfg, Corpus.of_era(items))
    assert result.metrics["weighted"]["weighting"] == "share"
    assert result.metrics["weighted"]["test_loss"] > 0


def test_weightings_set_how_often_each_sex_and_decade_is_drawn() -> None:
    from training.data import WEIGHTINGS

    # two cells: 100 births (items of 60 and 40) and 10,000 births (items of 9,000 and 1,000)
    births = torch.tensor([60.0, 40.0, 9000.0, 1000.0], dtype=torch.float64)
    cell = torch.tensor([100.0, 100.0, 10000.0, 10000.0], dtype=torch.float64)

    def cell_totals(weighting: str) -> tuple[float, float]:
        w = WEIGHTINGS[weighting](births, cell)
        assert torch.allclose(w[0] / w[1], births[0] / births[1])  # by births within a cell
        return float(w[:2].sum()), float(w[2:].sum())

    small, large = cell_totals("births")
    assert large / small == pytest.approx(100)  # as many draws as births
    small, large = cell_totals("share")
    assert large / small == pytest.approx(1)  # every cell alike
    small, large = cell_totals("share-sqrt")
    assert large / small == pytest.approx(10)  # by the square root of the cell's births


def test_exclude_held_out_keeps_another_runs_val_and_test_items_out(
    small_corpus: Path, tmp_path: Path
) -> None:
    from training.data import held_out_of
    from training.train import run

    big = tmp_path / "big.txt"
    extra = [f"zz{chr(97 + i)}{chr(97 + j)}" for i in range(10) for j in range(10)]
    big.write_text(small_corpus.read_text() + "\n".join(extra) + "\n")
    small = (str(small_corpus),)
    quick = {**TINY, "steps": 5, "eval_interval": 5}
    cfg = TrainConfig(corpus=str(big), name="big", out=str(tmp_path / "m"), exclude_held_out=small, **quick)
    held = held_out_of((str(small_corpus),), cfg.val_fraction, cfg.test_fraction, cfg.seed)
    assert len(held) == 80  # the val and test items of the small corpus's own 80/10/10 split
    meta = run(cfg)
    assert meta["corpus"]["items"] == 500  # the corpus as read; the held-out ones are left out of it
    assert sum(meta["metrics"]["split"]["sizes"]) == 500 - 80


def test_exclude_held_out_with_the_runs_own_corpus_keeps_its_split(
    small_corpus: Path, tmp_path: Path
) -> None:
    from training.data import held_out_of, read_items, split_items
    from training.train import run

    # another corpus that holds out some of this corpus's training names
    other = tmp_path / "other.txt"
    items, _ = read_items(small_corpus)
    other.write_text("\n".join([*items[::2], *(f"qq{chr(97 + i)}" for i in range(20))]) + "\n")
    quick = {**TINY, "steps": 5, "eval_interval": 5}
    both = (str(small_corpus), str(other))
    cfg = TrainConfig(
        corpus=str(small_corpus), name="own", out=str(tmp_path / "m"), exclude_held_out=both, **quick
    )
    own = split_items(items, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    dropped = held_out_of((str(other),), cfg.val_fraction, cfg.test_fraction, cfg.seed) & set(own.train)
    assert dropped  # the case this covers: the other corpus holds out names this one trains on
    meta = run(cfg)
    # validation and test as every run on this corpus has them; training without the others' held-out
    assert meta["metrics"]["split"]["sizes"] == [len(own.train) - len(dropped), len(own.val), len(own.test)]
    plain = run(TrainConfig(corpus=str(small_corpus), name="plain", out=str(tmp_path / "m"), **quick))
    assert meta["metrics"]["test_loss"] != plain["metrics"]["test_loss"]  # trained on other names
    assert meta["metrics"]["split"]["sizes"][1:] == plain["metrics"]["split"]["sizes"][1:]


def test_init_starts_from_a_checkpoints_weights(small_corpus: Path, tmp_path: Path) -> None:
    from training.train import run

    corpus, out, init = str(small_corpus), str(tmp_path), str(tmp_path / "first.pt")
    trained = run(TrainConfig(corpus=corpus, name="first", out=out, **{**TINY, "steps": 80}))
    still = {**TINY, "steps": 1, "eval_interval": 1, "lr": 1e-6, "min_lr": 1e-6}
    tuned = run(TrainConfig(corpus=corpus, name="tuned", out=out, init=init, **still))
    # one tiny step from the trained weights: close to where the first run ended, far from a fresh model
    assert abs(tuned["metrics"]["val_loss"] - trained["metrics"]["val_loss"]) < 0.01
    assert tuned["training"]["pretrained"]["checkpoint"] == "first.pt"
    with pytest.raises(ValueError, match="--init has n_embd 8"):
        run(TrainConfig(corpus=corpus, name="x", out=out, init=init, **{**TINY, "n_embd": 12, "steps": 1}))
