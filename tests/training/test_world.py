"""`python -m training world`: the per-country table of a model conditioned on country, against a
one-country model and Markov chains on the same held-out names, and the country fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import world_sample
from training.config import TrainConfig
from training.corpus import WorldItem
from training.countries import CODES
from training.markov import Markov
from training.train import run
from training.world import ceilings, homes, main, parts_by_country


def test_a_names_home_is_where_it_takes_the_largest_share() -> None:
    items = [
        WorldItem("anna", "SE", "F", 50), WorldItem("bo", "SE", "M", 50),  # SE: 100 in all
        WorldItem("anna", "US", "F", 900), WorldItem("cy", "US", "M", 9100),  # US: 10,000 in all
    ]  # fmt: skip
    home = homes(items)
    assert home == {"anna": "SE", "bo": "SE", "cy": "US"}  # anna: half of SE's counts, 9% of US's
    assert ceilings(items, home) == {"SE": 1.0, "US": 0.91}
    parts = parts_by_country(items * 4, 0.25, 0.25, 1)
    assert set(parts) == {"SE", "US"}
    # every name of a part once, with its count in the country (each item stood four times)
    for country, p in parts.items():
        held = {**p["train"], **p["test"]}
        assert all(held[it.name] == 4 * it.count for it in items if it.country == country and it.name in held)


def test_a_markov_chain_counts_names_by_their_weights() -> None:
    """A name given weight 3 is learnt and scored as if it stood three times."""
    names, test = ["anna", "bo", "cyd"], ["ann", "cy"]
    repeated = Markov(["anna"] * 3 + ["bo", "cyd"], 3)
    weighted = Markov(names, 3, weights=[3, 1, 1])
    assert weighted.loss(test) == pytest.approx(repeated.loss(test))
    assert weighted.loss(test, [2, 1]) == pytest.approx(repeated.loss(["ann", "ann", "cy"]))
    assert weighted.loss(test) != pytest.approx(Markov(names, 3).loss(test))
    with pytest.raises(ValueError, match="2 weights for 3 names"):
        Markov(names, 3, weights=[1, 2])


def test_world_prints_the_per_country_table_and_writes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = world_sample(tmp_path, 50)
    quick = {
        "n_embd": 8, "hidden": (16, 16, 16, 16), "steps": 20, "batch_size": 64, "eval_interval": 10,
        "progress": False, "threads": 1,
    }  # fmt: skip
    run(
        TrainConfig(
            corpus=str(corpus), name="world", out=str(tmp_path / "m"), conditions="sex,country", **quick
        )
    )
    single = tmp_path / "single"
    run(
        TrainConfig(
            corpus=str(corpus),
            name="world-fr",
            out=str(single),
            conditions="none",
            countries=("FR",),
            **quick,
        )
    )
    model = tmp_path / "m" / "world.pt"
    assert main([str(model), "--corpus", str(corpus), "--single", str(single), "--samples", "40"]) == 0
    out = capsys.readouterr().out
    assert "| FR |" in out and "| IL |" in out and "of the ceiling on average; worst" in out
    table = json.loads(model.with_suffix(".world.json").read_text())["countries"]
    assert set(table) == set(CODES)
    for country, row in table.items():
        if row["test_names"]:  # a small country may have none in every 50th line
            for key in ("", "births_"):
                assert row[f"{key}shared"] > 0 and row[f"{key}markov3"] > 0 and row[f"{key}markov4"] > 0
        assert (row["single"] is not None) == (row["births_single"] is not None) == (country == "FR")
        assert 0 <= row["fit"]["share"] <= 1 and 0 < row["fit"]["ceiling"] <= 1
        assert row["fit"]["real"] <= row["fit"]["sampled"] <= 40
    assert main([str(model), "--corpus", str(corpus), "--samples", "0"]) == 2
    assert "--samples must be a positive integer" in capsys.readouterr().out
