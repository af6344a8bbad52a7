"""
Do the sex models keep to their sex, and are sex-neutral names neutral? Measured on samples at
temperature 1 (duplicates kept), against the SSA births since 1990 (resources/names-era.tsv.gz).

    python -m training sexes --female models/names-female.pt --male models/names-male.pt \
        --era models/names-era.pt [--samples 2000] [--seed 0] [--json out.json]

1. Other-sex share. Of what a sex's model gives, the share that are real names of the other sex:
   given since 1990 to the other sex at least 9 times as often as to the model's (Willow, for a
   boy's model). Against a character Markov chain of order 4 trained on the model's own training
   split (the corpus named in its meta.json, split as its training split it), sampled the same way:
   the simplest model of that sex's names sets the bar.
2. Neutral names, from the era model asked for sex neutral (any year, and each decade of
   --decades): of the names it gives that are real names since 1990, the share that are
   gender-neutral by the rule (each sex at least a third of the births, at least 100 births); the
   real-data baseline is that share among names drawn as births are since 1990. Of the names it
   invents (given in no year 1880-2024), the share whose log-probabilities as a girl's and as a boy's name
   (same year) differ by less than log 2; the baseline is the same share for names the model
   invents when asked for either sex.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from training.config import TrainConfig
from training.corpus import NEUTRAL_FROM, births_since, is_neutral, read_era, read_items
from training.data import split_items
from training.evaluate import MAX_LENGTH, Checkpoint
from training.markov import Markov

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
ERA_CORPUS = RESOURCES / "names-era.tsv.gz"
OTHER_SEX_RATIO = 9  # a name is the other sex's when that sex received it this many times as often
MARKOV_ORDER = 4


def read_births(corpus: Path) -> tuple[dict[str, dict[str, int]], set[str]]:
    """Births by name and sex since NEUTRAL_FROM, and every name of every year."""
    items, _ = read_era(corpus)
    return births_since(items), {it.name for it in items}


def is_other_sex(births: dict[str, dict[str, int]], name: str, sex: str) -> bool:
    b = births.get(name)
    other = "M" if sex == "F" else "F"
    return b is not None and b[other] > 0 and b[other] >= OTHER_SEX_RATIO * b[sex]


def is_real_neutral(births: dict[str, dict[str, int]], name: str) -> bool:
    return name in births and is_neutral(births[name])


@torch.inference_mode()
def sample_pair(ckpt: Checkpoint, one: int, other: int, n: int, seed: int) -> list[str]:
    """n names whose every character is drawn from the normalised geometric mean of the next-
    character distributions after two start tokens (sex neutral: a girl's and a boy's), as the
    service samples them; the same tokens are fed to both."""
    gen = torch.Generator().manual_seed(seed)
    ctx = int(ckpt.meta["context_length"])
    states, logits = [], []
    for start in (one, other):
        state = ckpt.module.init_state(n)
        token = torch.full((n,), start, dtype=torch.long)
        for _ in range(ctx if start else 1):
            out, state = ckpt.module.step(token, state)
        states.append(state)
        logits.append(out)
    rows = torch.zeros(n, MAX_LENGTH + 1, dtype=torch.long)
    for t in range(MAX_LENGTH + 1):
        mean = 0.5 * (torch.log_softmax(logits[0], 1) + torch.log_softmax(logits[1], 1))
        token = torch.multinomial(torch.softmax(mean, dim=1), 1, generator=gen).squeeze(1)
        rows[:, t] = token
        for k in range(2):
            logits[k], states[k] = ckpt.module.step(token, states[k])
    return _names(ckpt, rows.tolist())


def _names(ckpt: Checkpoint, rows: list[list[int]]) -> list[str]:
    return ["".join(ckpt.vocab[i] for i in row[: row.index(0)]) for row in rows if 0 in row]


@torch.inference_mode()
def logprobs(ckpt: Checkpoint, start: int, names: list[str]) -> list[float]:
    """Each name's log-probability (its end counted) after a start token."""
    if not names:
        return []
    stoi = {c: i for i, c in enumerate(ckpt.vocab)}
    ctx = int(ckpt.meta["context_length"])
    width = max(map(len, names)) + 1
    targets = torch.tensor([[stoi[c] for c in s] + [0] * (width - len(s)) for s in names])
    state = ckpt.module.init_state(len(names))
    token = torch.full((len(names),), start, dtype=torch.long)
    for _ in range(ctx if start else 1):
        out, state = ckpt.module.step(token, state)
    total = torch.zeros(len(names), dtype=torch.float64)
    for t in range(width):
        lp = torch.log_softmax(out.double(), 1).gather(1, targets[:, t : t + 1]).squeeze(1)
        total += lp.masked_fill(torch.tensor([t > len(s) for s in names]), 0.0)
        out, state = ckpt.module.step(targets[:, t], state)
    return total.tolist()


def other_sex_share(names: list[str], births: dict[str, dict[str, int]], sex: str) -> float:
    return sum(is_other_sex(births, s, sex) for s in names) / max(1, len(names))


def keep_to_sex(
    path: Path, sex: str, births: dict[str, dict[str, int]], samples: int, seed: int
) -> dict[str, object]:
    """Other-sex shares of a sex model and of the Markov chain on its own training split."""
    ckpt = Checkpoint(path)
    names = ckpt.sample(0, samples, seed)
    # the corpus the checkpoint names, beside the SSA births, split as training split it (an
    # ensemble's members share the defaults' split)
    corpus = RESOURCES / ckpt.meta["corpus"]["file"]
    items, sha = read_items(corpus)
    if sha != ckpt.meta["corpus"]["sha256"]:
        raise ValueError(f"{corpus} is not the corpus {path} was trained on (sha256 {sha})")
    settings = {**asdict(TrainConfig()), **ckpt.meta["training"].get("settings", {})}
    split = split_items(items, settings["val_fraction"], settings["test_fraction"], settings["seed"])
    chain = Markov(split.train, MARKOV_ORDER)
    chain_names = chain.sample(random.Random(seed), samples)
    examples = [s for s in dict.fromkeys(names) if is_other_sex(births, s, sex)][:8]
    return {
        "model": ckpt.meta["name"],
        "sex": sex,
        "corpus": corpus.name,
        "samples": len(names),
        "share": other_sex_share(names, births, sex),
        "markov": other_sex_share(chain_names, births, sex),
        "markov_test_loss": chain.loss(split.test),
        "examples": examples,
    }


def neutral_shares(
    path: Path,
    births: dict[str, dict[str, int]],
    every: set[str],
    decade: int | None,
    samples: int,
    seed: int,
) -> dict[str, object]:
    """The era model asked for sex neutral (in `decade`, or any year), as the service asks it:
    what the mean of the two distributions proposes, and what the service's keep rule keeps (a real
    name the model's data calls neutral; an invented one with a gap under log 2)."""
    ckpt = Checkpoint(path)
    f, m = ckpt.token(sex="F", decade=decade), ckpt.token(sex="M", decade=decade)
    if decade is not None and (f == 0 or m == 0):
        raise ValueError(f"{path} has no condition for the {decade}s")
    proposed = sample_pair(ckpt, f, m, samples, seed)
    either = ckpt.sample(ckpt.token(decade=decade), samples, seed)
    listed = set(ckpt.meta.get("neutral", {}).get("names", ()))

    def gaps(names: list[str]) -> list[float]:
        return [a - b for a, b in zip(logprobs(ckpt, f, names), logprobs(ckpt, m, names), strict=True)]

    def shares(names: list[str]) -> dict[str, float | int]:
        real = [s for s in names if s in births]
        invented = [s for s in names if s not in every]  # given in no year 1880-2024
        close = sum(abs(g) < math.log(2) for g in gaps(invented))
        return {
            "names": len(names),
            "real": len(real),
            "real_neutral": sum(is_real_neutral(births, s) for s in real) / max(1, len(real)),
            "invented": len(invented),
            "invented_close": close / max(1, len(invented)),
        }

    def keeps(name: str, gap: float) -> bool:  # app/inference/sampling.py SampleTask.balanced
        if listed and name in every:
            return name in listed
        return abs(gap) < math.log(2)

    kept = [s for s, g in zip(proposed, gaps(proposed), strict=True) if keeps(s, g)]
    return {
        "decade": decade,
        "proposed": shares(proposed),
        "kept": shares(kept),
        "either": shares(either),
        "acceptance": len(kept) / max(1, len(proposed)),
        "examples": list(dict.fromkeys(kept))[:10],
    }


def births_baseline(births: dict[str, dict[str, int]]) -> float:
    """The share of births since 1990 that went to gender-neutral names: what names drawn as births
    are meet the rule."""
    total = sum(sum(b.values()) for b in births.values())
    return sum(sum(b.values()) for b in births.values() if is_neutral(b)) / total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training sexes", description=__doc__.split("\n")[1])
    parser.add_argument("--female", type=Path, help="a girls' model (unconditioned)")
    parser.add_argument("--male", type=Path, help="a boys' model (unconditioned)")
    parser.add_argument("--era", type=Path, help="a model conditioned on sex (and decade): neutral names")
    parser.add_argument("--corpus", type=Path, default=ERA_CORPUS, help="the SSA births (names-era.tsv.gz)")
    parser.add_argument("--samples", type=int, default=2000, help="names sampled per model and condition")
    parser.add_argument(
        "--decades", default="1990,2020", help="decades to ask the era model for, besides any year"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    births, every = read_births(args.corpus)
    report: dict[str, object] = {"since": NEUTRAL_FROM, "ratio": OTHER_SEX_RATIO}
    rows = [
        keep_to_sex(path, sex, births, args.samples, args.seed)
        for sex, path in (("F", args.female), ("M", args.male))
        if path is not None
    ]
    if rows:
        print(
            f"other-sex share: real names the other sex got >= {OTHER_SEX_RATIO}x as often, {NEUTRAL_FROM}-"
        )
        print(f"| model | samples | its share | Markov-{MARKOV_ORDER}'s | at or below | examples |")
        print("| --- | ---: | ---: | ---: | --- | --- |")
        for r in rows:
            ok = "yes" if r["share"] <= r["markov"] else "no"
            shares = f"{r['share']:.1%} | {r['markov']:.1%}"
            print(f"| {r['model']} | {r['samples']} | {shares} | {ok} | {', '.join(r['examples'])} |")
        report["other_sex"] = rows
    if args.era is not None:
        decades: list[int | None] = [None, *(int(d) for d in args.decades.split(",") if d)]
        neutral = [neutral_shares(args.era, births, every, d, args.samples, args.seed) for d in decades]
        baseline = births_baseline(births)
        print(f"\nsex neutral ({args.era.name}): of the real names, the share meeting the rule (births since")
        print(
            f"{NEUTRAL_FROM}: {baseline:.1%}); of the invented, the share with |log P(F) - log P(M)| < log 2"
        )
        print("| year | names | kept | real | meet the rule | invented | close | examples kept |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
        for r in neutral:
            year = "any" if r["decade"] is None else f"{r['decade']}s"
            for what in ("either", "proposed", "kept"):
                x = r[what]
                label = {"either": "either sex", "proposed": "neutral: the mean", "kept": "neutral: kept"}[
                    what
                ]
                share = f"{r['acceptance']:.1%}" if what == "kept" else ""
                cells = f"{x['real']} | {x['real_neutral']:.1%} | {x['invented']} | {x['invented_close']:.1%}"
                shown = ", ".join(r["examples"]) if what == "kept" else ""
                print(f"| {year} | {label} | {share} | {cells} | {shown} |")
        report["neutral"] = neutral
        report["births_baseline"] = baseline
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
