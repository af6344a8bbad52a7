"""
Does the condition work? Period fit of a conditioned model (names-era), against a baseline and
the ceiling that real names reach.

    python -m training evaluate models/names-era.pt --baseline runs/names-era-uncond.pt

For each sex S and decade D the model generates `--samples` names given (S, D) (temperature 1,
duplicates kept, real names kept: drawn as births are). Each generated name that is a real SSA name
for sex S has a peak decade: the decade in which it took its largest share of that decade's births
of sex S. The score of (S, D) is the share of those names whose peak decade is within one decade of
D. Two references, scored the same way:

- the ceiling: real names drawn from decade D's own births of sex S (computed exactly, as the
  births-weighted share over every name of that decade, rather than by sampling);
- the baseline: a model with no condition (the same architecture trained on the same items), asked
  the same way for S and D: the names it samples do not depend on them.

The command prints the test losses by sex and decade (from each checkpoint's metrics), the period
fit by sex and decade with each model's fraction of the ceiling, writes the matrix of conditioned
decade by peak decade as a heat map PNG beside the model, and the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from checkpoint_format import ITEMS_FILE, META_FILE, torchscript
from training.corpus import DECADES, SEXES, read_era

MAX_LENGTH = 32  # longest name sampled; SSA names have at most 15 characters


class Checkpoint:
    """A checkpoint's TorchScript module and metadata, sampled through its step() as the service
    does (a forced start, then one token per step)."""

    def __init__(self, path: Path) -> None:
        self.module, extra = torchscript.load(path, (META_FILE, ITEMS_FILE))
        self.path = path
        self.meta: dict[str, Any] = json.loads(extra[META_FILE])
        self.vocab: list[str] = self.meta["vocab"]
        conditions = self.meta.get("conditions", {})
        self.factors: list[str] = list(conditions.get("factors", {}))
        self.tokens = {
            tuple(t.get(f) for f in self.factors): t["token"] for t in conditions.get("tokens", [])
        }

    def token(self, **values: Any) -> int:
        """The start token for a condition (factor=value; a factor left out or None: not given);
        the boundary (0) for a model without conditions or with every factor left out."""
        key = tuple(values.get(f) for f in self.factors)
        return self.tokens.get(key, 0) if self.tokens else 0

    @torch.inference_mode()
    def sample(self, start: int, n: int, seed: int) -> list[str]:
        """n names sampled at temperature 1 after the start token (a condition or the boundary)."""
        gen = torch.Generator().manual_seed(seed)
        state = self.module.init_state(n)
        ctx = int(self.meta["context_length"])
        token = torch.full((n,), start, dtype=torch.long)
        steps = ctx if start else 1  # a condition fills the whole context, as in training
        for _ in range(steps):
            logits, state = self.module.step(token, state)
        out = torch.zeros(n, MAX_LENGTH + 1, dtype=torch.long)
        for t in range(MAX_LENGTH + 1):
            token = torch.multinomial(torch.softmax(logits, dim=1), 1, generator=gen).squeeze(1)
            out[:, t] = token
            logits, state = self.module.step(token, state)
        names = []
        for row in out.tolist():
            end = row.index(0) if 0 in row else None
            if end is not None:  # names longer than MAX_LENGTH are dropped
                names.append("".join(self.vocab[i] for i in row[:end]))
        return names


def peak_decades(corpus: Path) -> tuple[dict[str, dict[str, int]], dict[str, dict[int, dict[str, int]]]]:
    """Per sex: each name's peak decade; and per sex and decade: the births of each name."""
    items, _ = read_era(corpus)
    totals: dict[tuple[str, int], int] = defaultdict(int)
    for it in items:
        totals[it.sex, it.decade] += it.births
    best: dict[str, dict[str, tuple[float, int]]] = {s: {} for s in SEXES}
    births: dict[str, dict[int, dict[str, int]]] = {s: {d: {} for d in DECADES} for s in SEXES}
    for it in items:
        share = it.births / totals[it.sex, it.decade]
        if share > best[it.sex].get(it.name, (-1.0, 0))[0]:
            best[it.sex][it.name] = (share, it.decade)
        births[it.sex][it.decade][it.name] = it.births
    return {s: {n: d for n, (_, d) in names.items()} for s, names in best.items()}, births


def near(peak: int, decade: int) -> bool:
    return abs(peak - decade) <= 10


def period_fit(
    model: Checkpoint, peaks: dict[str, dict[str, int]], samples: int, seed: int
) -> dict[str, dict[int, dict[str, Any]]]:
    """Per sex and decade: how many samples were real names, their peak decades, and the share
    within one decade of the asked one."""
    fit: dict[str, dict[int, dict[str, Any]]] = {s: {} for s in SEXES}
    for i, sex in enumerate(SEXES):
        for j, decade in enumerate(DECADES):
            names = model.sample(model.token(sex=sex, decade=decade), samples, seed + 1000 * i + j)
            real = [peaks[sex][n] for n in names if n in peaks[sex]]
            counts = {d: real.count(d) for d in DECADES}
            share = sum(near(p, decade) for p in real) / len(real) if real else 0.0
            fit[sex][decade] = {"sampled": len(names), "real": len(real), "peaks": counts, "share": share}
    return fit


def ceiling(
    peaks: dict[str, dict[str, int]], births: dict[str, dict[int, dict[str, int]]]
) -> dict[str, dict[int, float]]:
    """Per sex and decade with births in the corpus: the births-weighted share of that decade's
    names peaking within one."""
    out: dict[str, dict[int, float]] = {s: {} for s in SEXES}
    for sex in SEXES:
        for decade in DECADES:
            b = births[sex][decade]
            if b:
                hits = sum(k for n, k in b.items() if near(peaks[sex][n], decade))
                out[sex][decade] = hits / sum(b.values())
    return out


def plot(fit: dict[str, dict[int, dict[str, Any]]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), constrained_layout=True)
    for ax, sex in zip(axes, SEXES, strict=True):
        rows = []
        for decade in DECADES:
            counts = fit[sex][decade]["peaks"]
            total = max(sum(counts.values()), 1)
            rows.append([counts[d] / total for d in DECADES])
        image = ax.imshow(rows, cmap="viridis", vmin=0, vmax=1, origin="upper")
        labels = [f"{d}s" for d in DECADES]
        ax.set_xticks(range(len(DECADES)), labels, rotation=60, fontsize=8)
        ax.set_yticks(range(len(DECADES)), labels, fontsize=8)
        ax.set_xlabel("peak decade of the generated (real) name")
        ax.set_ylabel("decade asked for")
        ax.set_title({"F": "girls (sex F)", "M": "boys (sex M)"}[sex])
    fig.colorbar(image, ax=axes, shrink=0.8, label="share of the row's real names")
    fig.suptitle(title)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


def loss_table(models: dict[str, Checkpoint]) -> list[str]:
    """Test loss by sex and decade from each checkpoint's metrics, as Markdown rows."""
    named = {k: m.meta["metrics"] for k, m in models.items()}
    head = " | ".join(named)
    # change: the last model's loss minus the first's (negative: the condition lowers it)
    lines = [f"| sex | decade | {head} | change |", "| --- | --- |" + " ---: |" * (len(named) + 1)]
    rest = len(named) > 1
    for sex in SEXES:
        for decade in DECADES:
            values = [m["test_loss_by_condition"].get(sex, {}).get(str(decade)) for m in named.values()]
            if None in values:  # no test item of that sex and decade
                continue
            change = f"{values[-1] - values[0]:+.4f}" if rest else ""
            lines.append(
                f"| {sex} | {decade}s | " + " | ".join(f"{v:.4f}" for v in values) + f" | {change} |"
            )
    overall = [m["test_loss"] for m in named.values()]
    change = f"{overall[-1] - overall[0]:+.4f}" if rest else ""
    lines.append("| all | all | " + " | ".join(f"**{v:.4f}**" for v in overall) + f" | {change} |")
    weighted = [m.get("test_loss_births_weighted") for m in named.values()]
    if all(w is not None for w in weighted):  # each item counted by its births, as users meet names
        change = f"{weighted[-1] - weighted[0]:+.4f}" if rest else ""
        cells = " | ".join(f"**{w:.4f}**" for w in weighted)
        lines.append(f"| all, by births | all | {cells} | {change} |")
    return lines


def parse_sampling(parser: argparse.ArgumentParser, argv: list[str] | None, per: str) -> argparse.Namespace:
    """Add the sampling flags (--samples per `per`, --seed, --threads) a sampling tool shares, parse
    argv, and set torch's threads."""
    parser.add_argument("--samples", type=int, default=1000, help=f"names generated per {per}")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training evaluate", description=__doc__.split("\n")[1])
    parser.add_argument(
        "model", type=Path, help="a conditioned checkpoint (meta.json declares its conditions)"
    )
    parser.add_argument("--baseline", type=Path, help="the same architecture trained without conditions")
    parser.add_argument(
        "--corpus", type=Path, default=Path("resources/names-era.tsv.gz"), help="the era corpus"
    )
    args = parse_sampling(parser, argv, "sex and decade")
    model = Checkpoint(args.model)
    if not model.tokens:
        parser.error(f"{args.model} declares no conditions")
    peaks, births = peak_decades(args.corpus)
    top = ceiling(peaks, births)
    models = {model.meta["name"]: model}
    if args.baseline:
        models = {args.baseline.stem: Checkpoint(args.baseline), **models}
    fits = {k: period_fit(m, peaks, args.samples, args.seed) for k, m in models.items()}

    print(
        f"test loss (nats/char) by sex and decade, each item given its own condition: {', '.join(models)}\n"
    )
    print("\n".join(loss_table(models)))
    print(f"\nperiod fit: share of generated real names peaking within one decade of the one asked for "
          f"({args.samples} samples per sex and decade)\n")  # fmt: skip
    names = list(models)
    print(
        "| sex | decade | ceiling | "
        + " | ".join(names)
        + " | "
        + " | ".join(f"{k} / ceiling" for k in names)
        + " |"
    )
    print("| --- | --- | ---: |" + " ---: |" * (2 * len(names)))
    ratios: dict[str, list[float]] = {k: [] for k in names}
    scored = [(s, d) for s in SEXES for d in DECADES if d in top[s]]  # the cells with births
    for sex, decade in scored:
        c = top[sex][decade]
        shares = [fits[k][sex][decade]["share"] for k in names]
        for k, s in zip(names, shares, strict=True):
            ratios[k].append(s / c)
        cells = [f"{s:.1%}" for s in shares] + [f"{s / c:.0%}" for s in shares]
        print(f"| {sex} | {decade}s | {c:.1%} | " + " | ".join(cells) + " |")
    mean_ceiling = sum(top[s][d] for s, d in scored) / len(scored)
    means = [sum(fits[k][s][d]["share"] for s, d in scored) / len(scored) for k in names]
    print(f"| mean | | {mean_ceiling:.1%} | " + " | ".join(f"**{m:.1%}**" for m in means) + " | "
          + " | ".join(f"**{sum(r) / len(r):.0%}**" for r in ratios.values()) + " |")  # fmt: skip
    png = args.model.with_suffix(".period.png")
    plot(
        fits[model.meta["name"]], f"{model.meta['name']}: peak decade of generated names by decade asked", png
    )
    report = {
        "samples": args.samples,
        "seed": args.seed,
        "ceiling": {s: {str(d): v for d, v in top[s].items()} for s in SEXES},
        "models": {
            k: {
                "share": {s: {str(d): fits[k][s][d]["share"] for d in DECADES} for s in SEXES},
                "real": {s: {str(d): fits[k][s][d]["real"] for d in DECADES} for s in SEXES},
                "peaks": {s: {str(d): fits[k][s][d]["peaks"] for d in DECADES} for s in SEXES},
                "mean_share": mean,
                "mean_fraction_of_ceiling": sum(ratios[k]) / len(ratios[k]),
                "test_loss": models[k].meta["metrics"]["test_loss"],
            }
            for k, mean in zip(names, means, strict=True)
        },
        "command": "python -m training evaluate " + " ".join(argv if argv is not None else []),
    }
    out = args.model.with_suffix(".period.json")
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {png} and {out}")
    return 0
