"""
Train a hierarchical character model on a one-item-per-line corpus and export it as a TorchScript
checkpoint, with a metrics JSON and a loss-curve PNG beside it.

    python -m training train --corpus resources/names.txt --name names --out models/

Every item is one training sequence: left-padded with context_length - 1 boundary tokens, then the
boundary token, then the item; the model predicts each character and the end of the item (the
boundary again). Items are split 80/10/10 (train/val/test) by a seeded shuffle; the loss is the mean
cross-entropy in nats per predicted character, end of item counted, padding not. Validation loss is
measured at intervals and the best weights are kept; the test loss is measured once, at the end,
on those weights.

A conditioned corpus (`*.tsv.gz`: name, sex, decade, births; training/corpus.py) trains a model
given each item's sex and decade (training/conditions.py): its condition token replaces the boundary
in the padding and at the start. There the split is by name (a name in validation or test is in no
training item, under any sex or decade), items can be drawn in proportion to a function of their
births (`--weighting`), and the metrics add the test loss by sex and decade.

    python -m training train --corpus resources/names-era.tsv.gz --name names-era --out models/

`--init CHECKPOINT` starts from a trained model's weights (fine-tuning); `--exclude-held-out
CORPUS,...` leaves out of this corpus every item that those corpora's own runs (same seed and
fractions) hold out for validation and test, so that pretraining on a larger corpus never sees them.
When the run's own corpus is among them, its split stays as every run on it makes it and the other
corpora's held-out items leave its training part only.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch

from checkpoint_format import BOUNDARY
from training.conditions import ConditionSpace
from training.config import TrainConfig
from training.corpus import (
    NEUTRAL_RULE,
    EraItem,
    WorldItem,
    is_conditioned,
    neutral_names,
    read_conditioned,
    read_items,
    sha256_bytes,
)
from training.data import (
    WEIGHTINGS,
    Conditioner,
    Corpus,
    Encoded,
    Split,
    evaluate,
    excluded_held_out,
    item_losses,
    split_items,
)
from training.export import load_trained, save_checkpoint
from training.metadata import TrainResult, build_meta
from training.model import HierarchicalModel, ModelConfig


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model: HierarchicalModel, cfg: TrainConfig) -> torch.optim.AdamW:
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and not n.startswith("wte")]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or n.startswith("wte")]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99))


def train_model(
    cfg: TrainConfig,
    items: list[str] | Corpus,
    init: tuple[HierarchicalModel, list[str]] | None = None,
    train_only: set[str] | None = None,
) -> TrainResult:
    """Train on `items` (already read and checked; a Corpus for a conditioned one) and return the
    best-on-validation model. `init`: a trained model and its vocabulary, to start from;
    `train_only`: names left out of the training part after the split (validation and test keep
    theirs)."""
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    corpus = items if isinstance(items, Corpus) else Corpus(list(items))
    # by name: for a conditioned corpus the same name stands in several items, all in one part
    split = split_items(list(dict.fromkeys(corpus.texts)), cfg.val_fraction, cfg.test_fraction, cfg.seed)
    if cfg.countries:  # after the split, which stays the whole corpus's
        corpus = corpus.of_countries(cfg.countries)
        split = split.only(set(corpus.texts))
    vocab = [BOUNDARY, *sorted({c for s in corpus.texts for c in s})]
    if train_only:
        split = split.without_in_training(train_only)
        corpus = corpus.without(train_only.difference(split.val, split.test))
    space = None
    if corpus.factors is not None and cfg.conditions != "none":
        space = ConditionSpace.build(cfg.conditions.split(","))
        lacking = [f for f in space.factors if f not in corpus.factors[0]]
        if lacking:
            raise ValueError(
                f"--conditions {cfg.conditions!r}: the corpus gives its items "
                f"{', '.join(corpus.factors[0])}, not {', '.join(lacking)}"
            )

    torch.manual_seed(cfg.init_seed)
    model = HierarchicalModel(cfg.model_config(len(vocab), len(space) if space else 0))
    if init is not None:
        vocab = _check_init(init[0].config, init[1], model.config, vocab)
        model.load_state_dict(init[0].state_dict())
    data, rows_of = encode_parts(
        cfg, corpus, split, space, {c: i for i, c in enumerate(vocab)}, model.context_length
    )
    cond = None
    if space is not None:
        cond = Conditioner(space, len(vocab), model.context_length, cfg.conditioning, cfg.condition_dropout)
    history, best_step = fit(model, cfg, data, cond)
    metrics = final_metrics(model, cfg, data, cond, split, best_step, conditioned=corpus.factors is not None)
    if corpus.factors is not None:
        metrics["split"]["items"] = [len(data[k]) for k in ("train", "val", "test")]
        metrics.update(_by_condition(model, data["test"], cond, corpus, rows_of["test"]))
    return TrainResult(model, vocab, split, metrics, history, time.perf_counter() - t0, space)


def encode_parts(
    cfg: TrainConfig,
    corpus: Corpus,
    split: Split,
    space: ConditionSpace | None,
    stoi: dict[str, int],
    context_length: int,
) -> tuple[dict[str, Encoded], dict[str, list[int]]]:
    """Each part of the split as tensors (with its items' conditions, births and draw weights), and
    the corpus rows of each part."""
    part_of = {s: k for k in ("train", "val", "test") for s in getattr(split, k)}
    rows_of = {
        k: [i for i, s in enumerate(corpus.texts) if part_of[s] == k] for k in ("train", "val", "test")
    }
    cells: dict[tuple[Any, ...], float] = {}  # births by sex and decade (country), for "share" weighting
    cell_of: list[tuple[Any, ...]] = []  # each item's sex and decade (country), as a key of `cells`
    if corpus.factors is not None and corpus.births is not None:
        cell_of = [tuple(sorted(f.items())) for f in corpus.factors]
        for key, b in zip(cell_of, corpus.births, strict=True):
            cells[key] = cells.get(key, 0.0) + b
    data = {}
    for k, rows in rows_of.items():
        factors = births = None
        if space is not None and corpus.factors is not None:
            factors = space.value_indices([corpus.factors[i] for i in rows])
        if corpus.births is not None:
            births = torch.tensor([corpus.births[i] for i in rows], dtype=torch.float64)
        data[k] = Encoded([corpus.texts[i] for i in rows], stoi, context_length, factors, births)
        if cfg.weighting != "none" and births is not None and corpus.factors is not None:
            cell = torch.tensor([cells[cell_of[i]] for i in rows])
            data[k].weights = WEIGHTINGS[cfg.weighting](births, cell)
    return data, rows_of


def fit(
    model: HierarchicalModel, cfg: TrainConfig, data: dict[str, Encoded], cond: Conditioner | None
) -> tuple[list[dict[str, float]], int]:
    """The optimisation loop: cfg.steps batches of the training part, validation every
    eval_interval steps. Leaves the model with its best-on-validation weights, in eval mode;
    returns the history (one row per evaluation) and the step of the best weights."""
    train = data["train"]
    weights = train.weights
    opt = make_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(cfg.init_seed)
    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc=f"train {cfg.name}", unit="step", dynamic_ncols=True)
    history: list[dict[str, float]] = []
    best_val, best_step, best_state = math.inf, 0, copy.deepcopy(model.state_dict())
    running = None
    model.train()
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        if weights is None:
            rows = torch.randint(len(train), (cfg.batch_size,), generator=gen)
        else:
            rows = torch.multinomial(weights, cfg.batch_size, replacement=True, generator=gen)
        x, y = train.batch(rows)
        c = None
        if cond is not None and train.factors is not None:
            x, c = cond(x, train.factors[rows], gen)
        _, loss = model(x, y, cond=c)
        assert loss is not None
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        last = step == cfg.steps - 1
        if (step + 1) % cfg.eval_interval == 0 or last:
            val = evaluate(model, data["val"], cond)  # on unseen names alike, whatever the weighting
            history.append({"step": step + 1, "train_loss": running, "val_loss": val, "lr": lr_at(step, cfg)})
            if val < best_val:
                best_val, best_step, best_state = val, step + 1, copy.deepcopy(model.state_dict())
            if bar is not None:
                bar.set_postfix(train=f"{running:.4f}", val=f"{val:.4f}", best=f"{best_val:.4f}")
        if bar is not None:
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(
                    train=f"{running:.4f}", best=f"{best_val:.4f}" if best_val < math.inf else "-"
                )
    if bar is not None:
        bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return history, best_step


def final_metrics(
    model: HierarchicalModel,
    cfg: TrainConfig,
    data: dict[str, Encoded],
    cond: Conditioner | None,
    split: Split,
    best_step: int,
    conditioned: bool,
) -> dict[str, Any]:
    """The trained model's losses on every part (and weighted ones, where items are drawn by
    weight), and how the split was made (by name, for a conditioned corpus)."""
    method = "items shuffled with random.Random(seed), then cut in order: train, val, test"
    if conditioned:
        method = (
            "distinct names, in corpus order, shuffled with random.Random(seed), then cut in order: "
            "train, val, test; each item goes with its name"
        )
    metrics: dict[str, Any] = {
        "train_loss": evaluate(model, data["train"], cond),
        "val_loss": evaluate(model, data["val"], cond),
        "test_loss": evaluate(model, data["test"], cond),
        "unit": "nats per character (end of item counted, padding not)",
        "best_step": best_step,
        "split": {
            "method": method,
            "seed": cfg.seed,
            "fractions": [1 - cfg.val_fraction - cfg.test_fraction, cfg.val_fraction, cfg.test_fraction],
            "sizes": [len(split.train), len(split.val), len(split.test)],
        },
    }
    if cfg.weighting != "none" and data["test"].weights is not None:
        metrics["weighted"] = {
            "weighting": cfg.weighting,
            "val_loss": evaluate(model, data["val"], cond, weighted=True),
            "test_loss": evaluate(model, data["test"], cond, weighted=True),
        }
    return metrics


def _check_init(a: ModelConfig, init_vocab: list[str], b: ModelConfig, vocab: list[str]) -> list[str]:
    """The vocabulary to train with when starting from a model of config `a` and vocabulary
    `init_vocab`: its own, which must hold every character of the corpus; and it must have this
    run's architecture `b`."""
    if (a.n_embd, tuple(a.hidden), a.n_conditions) != (b.n_embd, tuple(b.hidden), b.n_conditions):
        raise ValueError(
            f"--init has n_embd {a.n_embd}, hidden {list(a.hidden)}, {a.n_conditions} conditions; this run "
            f"{b.n_embd}, {list(b.hidden)}, {b.n_conditions}: pass the same architecture"
        )
    missing = sorted(set(vocab) - set(init_vocab))
    if missing:
        raise ValueError(f"--init's vocabulary lacks characters of the corpus: {''.join(missing)!r}")
    return init_vocab


def _by_condition(
    model: HierarchicalModel, test: Encoded, cond: Conditioner | None, corpus: Corpus, rows: list[int]
) -> dict[str, Any]:
    """Test loss by sex and by the corpus's other factor, decade or country (each item given its own
    condition, when the model has conditions), and over all items weighted by births (counts)."""
    sums, counts = item_losses(model, test, cond)
    assert corpus.factors is not None and test.births is not None
    groups: dict[str, dict[str, list[float]]] = {}
    for j, i in enumerate(rows):
        f = corpus.factors[i]
        other = f["decade"] if "decade" in f else f["country"]
        cell = groups.setdefault(str(f["sex"]), {}).setdefault(str(other), [0.0, 0.0])
        cell[0] += float(sums[j])
        cell[1] += int(counts[j])
    w = test.births
    return {
        "test_loss_by_condition": {
            sex: {dec: round(v[0] / v[1], 4) for dec, v in sorted(cells.items())}
            for sex, cells in sorted(groups.items())
        },
        "test_loss_births_weighted": float((sums * w).sum() / (counts.double() * w).sum()),
    }


def plot_history(history: list[dict[str, float]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [h["step"] for h in history]
    ax.plot(steps, [h["train_loss"] for h in history], label="train (running mean)")
    ax.plot(steps, [h["val_loss"] for h in history], label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/char)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def run(cfg: TrainConfig) -> dict[str, Any]:
    """Read the corpus, train, and write <out>/<name>.pt, .metrics.json and .loss.png (for
    "global" conditioning, which the checkpoint format does not carry, no .pt).

    Raises CorpusError or ValueError, before anything is written, for bad input."""
    cfg.validate()
    corpus_path = Path(cfg.corpus)
    items: list[str] | Corpus
    neutral: list[str] | None = None
    if is_conditioned(corpus_path):
        conditioned, sha = read_conditioned(corpus_path)
        if all(isinstance(it, EraItem) for it in conditioned):
            era = [it for it in conditioned if isinstance(it, EraItem)]
            items = Corpus.of_era(era)
            neutral = neutral_names(era)
        else:
            items = Corpus.of_world([it for it in conditioned if isinstance(it, WorldItem)])
        names = list(dict.fromkeys(items.texts))  # the checkpoint's items: every distinct name
        n_items = len(conditioned)
    else:
        if cfg.conditioning == "global" or cfg.weighting != "none":
            raise ValueError("--conditioning global and --weighting apply to conditioned corpora (*.tsv.gz)")
        items, sha = read_items(corpus_path)
        names, n_items = list(items), len(items)
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out must be a directory, got a file: {out}")
    held, train_only = excluded_held_out(
        corpus_path, cfg.exclude_held_out, cfg.val_fraction, cfg.test_fraction, cfg.seed
    )
    if held:
        items = items.without(held) if isinstance(items, Corpus) else [s for s in items if s not in held]
        names = [s for s in names if s not in held]
    init = pretrained = None
    if cfg.init:
        model, init_meta, init_items = load_trained(Path(cfg.init))
        if not isinstance(model, HierarchicalModel):
            raise ValueError(
                f"--init takes one model; {cfg.init} is an ensemble (start from one of its members)"
            )
        init = model, list(init_meta["vocab"])
        # what the weights have seen counts as known: `novel` names are new to both runs
        names = list(dict.fromkeys([*names, *init_items]))
        pretrained = {
            "checkpoint": Path(cfg.init).name,
            "sha256": sha256_bytes(Path(cfg.init).read_bytes()),
            "corpus": init_meta["corpus"],
            "excluded_held_out": init_meta["training"]["settings"].get("exclude_held_out", []),
            "metrics": {k: init_meta["metrics"][k] for k in ("train_loss", "val_loss", "test_loss")},
            "wall_time_s": init_meta["training"]["wall_time_s"],
            "command": init_meta["training"]["command"],
            # what that checkpoint started from in turn: the whole chain of runs, each with its
            # command and time (chain_wall_time_s adds them up)
            "pretrained": init_meta["training"].get("pretrained"),
            "chain_wall_time_s": init_meta["training"].get(
                "chain_wall_time_s", init_meta["training"]["wall_time_s"]
            ),
        }
    result = train_model(cfg, items, init, train_only)
    meta = build_meta(cfg, result, corpus_path, sha, n_items, pretrained)
    if neutral is not None:  # which real names /score and full names call gender-neutral
        meta["neutral"] = {"rule": NEUTRAL_RULE, "names": neutral}
    out.mkdir(parents=True, exist_ok=True)
    report = {k: v for k, v in meta.items() if k not in ("vocab",)}
    report["history"] = result.history
    if cfg.conditioning != "global" or result.space is None:
        report["checkpoint"] = save_checkpoint(result.model, meta, names, out / f"{cfg.name}.pt").name
    tmp = out / f".{cfg.name}.metrics.json.tmp"
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, out / f"{cfg.name}.metrics.json")
    plot_history(
        result.history, f"{cfg.name}: {meta['parameters']:,} parameters", out / f"{cfg.name}.loss.png"
    )
    return meta
