"""
Names of the world, measured per country: how well a model conditioned on country knows each
country's held-out names, against one-country models and character Markov chains, and how often
the names it gives for a country are that country's own.

    python -m training world models/names-world.pt
    python -m training world models/names-world.pt --single runs/world-single --samples 2000

For each country of names-world (resources/names-world.tsv.gz):
- its test names: the distinct names of that country in the corpus's test split (the split training
  makes, by name over the whole corpus, same seed and fractions), both sexes together;
- the shared model's loss on them, each given the country alone (sex left out), as training
  measures loss (nats per character, the end counted);
- a one-country model's loss on them, when `--single DIR` holds `world-<cc>.pt` (trained with
  `--countries CC`, which keeps the same split);
- Markov chains of order 3 and 4 trained on that country's training names;
- each of these losses twice: every test name counted once (by name), and each counted by its
  births in the country, the Markov chains then trained on names counted by births too (by births:
  the distribution the model is trained on, names as they are given);
- country fit: of `--samples` names the shared model gives for the country (temperature 1, sex left
  out) that are real names somewhere in the corpus, the share whose home is the country (the country
  where the name takes the largest share of the counts), as a fraction of the same share among the
  country's real names drawn by their counts (computed exactly).

Prints a Markdown table and writes it with the figures as JSON beside the model (`MODEL.world.json`).
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from training.config import TrainConfig
from training.corpus import CorpusError, WorldItem, read_world
from training.data import mean_nats, split_items
from training.evaluate import Checkpoint, parse_sampling
from training.markov import Markov
from training.score import name_losses

ORDERS = (3, 4)


def homes(items: list[WorldItem]) -> dict[str, str]:
    """Each name's home: the country where it takes the largest share of that country's counts
    (both sexes together; ties to the first country in code order)."""
    totals: dict[str, int] = defaultdict(int)
    per: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for it in items:
        totals[it.country] += it.count
        per[it.name][it.country] += it.count
    return {name: min(counts, key=lambda c: (-counts[c] / totals[c], c)) for name, counts in per.items()}


def ceilings(items: list[WorldItem], home: dict[str, str]) -> dict[str, float]:
    """Per country: the share of its real names, drawn by their counts, whose home it is."""
    total: dict[str, int] = defaultdict(int)
    own: dict[str, int] = defaultdict(int)
    for it in items:
        total[it.country] += it.count
        own[it.country] += it.count if home[it.name] == it.country else 0
    return {c: own[c] / total[c] for c in total}


def parts_by_country(
    items: list[WorldItem], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, dict[str, dict[str, int]]]:
    """Per country: its distinct training and test names under the corpus's split (training's),
    each with its count in that country (both sexes), in corpus order."""
    split = split_items(list(dict.fromkeys(it.name for it in items)), val_fraction, test_fraction, seed)
    part_of = dict.fromkeys(split.train, "train") | dict.fromkeys(split.test, "test")
    out: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: {"train": {}, "test": {}})
    for it in items:
        part = part_of.get(it.name)
        if part is not None:
            names = out[it.country][part]
            names[it.name] = names.get(it.name, 0) + it.count
    return dict(out)


def country_fit(
    model: Checkpoint, home: dict[str, str], country: str, samples: int, seed: int
) -> dict[str, Any]:
    names = model.sample(model.token(country=country), samples, seed)
    real = [home[n] for n in names if n in home]
    share = sum(h == country for h in real) / len(real) if real else 0.0
    return {"sampled": len(names), "real": len(real), "share": share}


def measure(
    model_path: Path, corpus: Path, single: Path | None, samples: int, seed: int, cfg: TrainConfig
) -> dict[str, dict[str, Any]]:
    items, _ = read_world(corpus)
    parts = parts_by_country(items, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    home = homes(items)
    ceiling = ceilings(items, home)
    model = Checkpoint(model_path)
    sizes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for it in items:
        sizes[it.country][0 if it.sex == "F" else 1] += 1
    table: dict[str, dict[str, Any]] = {}
    for k, country in enumerate(sorted(parts)):
        train, test = parts[country]["train"], parts[country]["test"]
        row: dict[str, Any] = {
            "female": sizes[country][0],
            "male": sizes[country][1],
            "test_names": len(test),
        }
        one = single / f"world-{country.lower()}.pt" if single else None
        names, births = list(test), torch.tensor(list(test.values()), dtype=torch.float64)
        # each model scores the test names once; its loss is read twice from that: every test name
        # once ("by name"), and each counted by its births ("births_", as the model is trained). A
        # country without a test name (only in a small sample of the corpus) has none
        losses = {
            "shared": name_losses(model_path, names, {"country": country}) if test else None,
            "single": name_losses(one, names, {}) if test and one is not None and one.is_file() else None,
        }
        for key, weights in (("", None), ("births_", births)):
            for label, scored in losses.items():
                row[f"{key}{label}"] = None if scored is None else mean_nats(*scored, weights)
        for key, weights, train_weights in (
            ("", None, None),
            ("births_", births.tolist(), list(map(float, train.values()))),
        ):
            for order in ORDERS:
                chain = Markov(list(train), order, train_weights)
                row[f"{key}markov{order}"] = chain.loss(names, weights) if test else None
        fit = country_fit(model, home, country, samples, seed + k)
        row["fit"] = {**fit, "ceiling": ceiling[country], "of_ceiling": fit["share"] / ceiling[country]}
        table[country] = row
    return table


LOSSES = ("shared", "single", "markov3", "markov4")


def markdown(table: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| country | girls' names | boys' names | test names | shared | one-country | Markov-3 | Markov-4 "
        "| by births: shared | one-country | Markov-3 | Markov-4 | country fit | of ceiling |",
        "| --- |" + " ---: |" * 13,
    ]
    for country, r in table.items():
        losses = " | ".join(
            "" if r[k] is None else f"{r[k]:.4f}" for k in (*LOSSES, *(f"births_{k}" for k in LOSSES))
        )
        fit = r["fit"]
        lines.append(
            f"| {country} | {r['female']:,} | {r['male']:,} | {r['test_names']:,} | {losses} | "
            f"{fit['share']:.1%} of {fit['real']} (ceiling {fit['ceiling']:.1%}) | {fit['of_ceiling']:.0%} |"
        )
    fits = [r["fit"]["of_ceiling"] for r in table.values()]
    worst = min(table, key=lambda c: table[c]["fit"]["of_ceiling"])
    lines.append(f"\nCountry fit: {sum(fits) / len(fits):.0%} of the ceiling on average; worst {worst}.")
    return lines


def main(argv: list[str] | None = None) -> int:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="python -m training world", description=__doc__.split("\n")[1])
    parser.add_argument("model", type=Path, help="a checkpoint conditioned on country (names-world)")
    parser.add_argument(
        "--corpus", type=Path, default=Path("resources/names-world.tsv.gz"), help="the names-world corpus"
    )
    parser.add_argument("--single", type=Path, help="a folder of one-country models, world-<cc>.pt")
    args = parse_sampling(parser, argv, "country")
    try:
        if args.samples < 1:
            raise ValueError(f"--samples must be a positive integer, got {args.samples}")
        table = measure(args.model, args.corpus, args.single, args.samples, args.seed, defaults)
    except (CorpusError, ValueError, OSError, KeyError) as e:
        print(f"error: {e}")
        return 2
    lines = markdown(table)
    print("\n".join(lines))
    out = args.model.with_suffix(".world.json")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(
        json.dumps({"samples": args.samples, "seed": args.seed, "countries": table}, indent=2) + "\n"
    )
    os.replace(tmp, out)
    return 0
