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
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from checkpoint_format import BOUNDARY, MODEL_NAME_RE
from training.conditions import ConditionSpace
from training.corpus import (
    CorpusError,
    EraItem,
    is_conditioned,
    lookup_provenance,
    read_era,
    read_items,
    sha256_bytes,
)
from training.export import load_trained, save_checkpoint
from training.model import IGNORE_INDEX, HierarchicalModel, ModelConfig


@dataclass
class TrainConfig:
    corpus: str = "resources/names.txt"
    name: str = "names"  # model name: the checkpoint is <out>/<name>.pt
    out: str = "models"
    description: str = ""  # defaults to the corpus provenance description
    # model
    n_embd: int = 24
    hidden: tuple[int, ...] = (160, 160, 160, 160)
    dropout: float = 0.1
    # optimisation
    steps: int = 12000
    batch_size: int = 128
    lr: float = 3e-3  # peak learning rate, after linear warm-up
    min_lr: float = 3e-4  # cosine decay ends here
    warmup_steps: int = 200
    weight_decay: float = 0.1  # AdamW, on weight matrices only
    grad_clip: float = 1.0
    # evaluation and split
    eval_interval: int = 250  # steps between validation passes (and best-weights checks)
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 1337  # the split (and, unless train_seed is set, initialisation, batches, dropout)
    # initialisation, batches and dropout; -1: the same as seed. Members of an ensemble differ by
    # this alone, so they share the split (and the names held out of pretraining)
    train_seed: int = -1
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    progress: bool = True  # tqdm bar on stderr
    # conditioned corpora (*.tsv.gz) only
    conditions: str = "sex,decade"  # the factors the model is given, or "none" (same items, no condition)
    conditioning: str = "tokens"  # "tokens" (exported) or "global" (compared in training only)
    condition_dropout: float = 0.1  # each factor is left out of an item's condition this often
    weighting: str = "none"  # how items are drawn ("none": alike; see WEIGHTINGS)
    # fine-tuning and pretraining
    init: str = ""  # checkpoint to start from (same architecture and vocabulary)
    exclude_held_out: tuple[str, ...] = ()  # corpora whose own val/test items are left out of this one

    def validate(self) -> None:
        if not MODEL_NAME_RE.match(self.name):
            raise ValueError(
                f"--name must be 1-64 characters of a-z, 0-9, '-' or '_' starting with a letter "
                f"or digit, got {self.name!r}"
            )
        for flag, value in [
            ("--steps", self.steps),
            ("--batch-size", self.batch_size),
            ("--eval-interval", self.eval_interval),
        ]:
            if value < 1:
                raise ValueError(f"{flag} must be a positive integer, got {value}")
        if self.warmup_steps < 0:
            raise ValueError(f"--warmup-steps must be >= 0, got {self.warmup_steps}")
        if self.threads < 0:
            raise ValueError(f"--threads must be >= 0, got {self.threads}")
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise ValueError(f"need --lr > 0 and 0 <= --min-lr <= --lr, got {self.lr}, {self.min_lr}")
        if self.weight_decay < 0 or self.grad_clip <= 0:
            raise ValueError("--weight-decay must be >= 0 and --grad-clip > 0")
        for flag, f in [("--val-fraction", self.val_fraction), ("--test-fraction", self.test_fraction)]:
            if not 0 < f < 1:
                raise ValueError(f"{flag} must be between 0 and 1 (exclusive), got {f}")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"--val-fraction + --test-fraction must leave a training part, got "
                f"{self.val_fraction} + {self.test_fraction}"
            )
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"--weighting must be one of {', '.join(WEIGHTINGS)}, got {self.weighting!r}")
        if not 0 <= self.condition_dropout < 1:
            raise ValueError(f"--condition-dropout must be in [0, 1), got {self.condition_dropout}")
        if self.conditions != "none":
            ConditionSpace.build(self.conditions.split(","))
        self.model_config(2, 0).validate()

    @property
    def init_seed(self) -> int:
        """The seed of the initial weights, the batches and dropout."""
        return self.seed if self.train_seed < 0 else self.train_seed

    def model_config(self, vocab_size: int, n_conditions: int) -> ModelConfig:
        return ModelConfig(
            vocab_size=vocab_size, n_embd=self.n_embd, hidden=tuple(self.hidden), dropout=self.dropout,
            n_conditions=n_conditions, conditioning=self.conditioning,
        )  # fmt: skip


# how a conditioned corpus's items are drawn in training, as a function of (births, births of the
# item's sex and decade in all): alike; by a function of births; by births within each sex and
# decade ("share"), which gives every condition the same weight however many births it had; or
# between "births" and "share" ("share-sqrt": births within each sex and decade, and each sex and
# decade by the square root of its births, so the 1880s, with a fortieth of the 1950s' births, get
# a sixth of their draws rather than a fortieth)
WEIGHTINGS = {
    "none": lambda births, cell: torch.ones_like(births),
    "log": lambda births, cell: 1 + torch.log(births),
    "sqrt": lambda births, cell: torch.sqrt(births),
    "births": lambda births, cell: births,
    "share": lambda births, cell: births / cell,
    "share-sqrt": lambda births, cell: births / torch.sqrt(cell),
}


@dataclass
class Split:
    train: list[str]
    val: list[str]
    test: list[str]


def split_items(items: list[str], val_fraction: float, test_fraction: float, seed: int) -> Split:
    """Shuffle with `seed` and cut into train/val/test; every part must end up non-empty."""
    order = list(items)
    random.Random(seed).shuffle(order)
    n = len(order)
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    n_train = n - n_val - n_test
    if min(n_val, n_test, n_train) < 1:
        raise ValueError(
            f"a split of {n} items with val {val_fraction} and test {test_fraction} leaves an empty "
            f"part (train {n_train}, val {n_val}, test {n_test})"
        )
    return Split(order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :])


def held_out_of(corpora: tuple[str, ...], cfg: TrainConfig) -> set[str]:
    """The items that runs on `corpora` with this run's seed and fractions hold out (val, test)."""
    held: set[str] = set()
    for path in corpora:
        items, _ = read_items(Path(path))
        split = split_items(items, cfg.val_fraction, cfg.test_fraction, cfg.seed)
        held.update(split.val, split.test)
    return held


class Encoded:
    """Items as padded tensors: x (N, ctx + L) inputs and y (N, L + 1) targets; for conditioned
    items also their factor value indices (N, F) and births (N,)."""

    def __init__(
        self,
        items: list[str],
        stoi: dict[str, int],
        context_length: int,
        factors: Tensor | None = None,
        births: Tensor | None = None,
    ) -> None:
        self.lengths = torch.tensor([len(s) for s in items])
        max_len = int(self.lengths.max())
        self.pad = context_length - 1
        ids = torch.tensor([[stoi[c] for c in s] + [0] * (max_len - len(s)) for s in items], dtype=torch.long)
        self.x = torch.cat([torch.zeros(len(items), self.pad + 1, dtype=torch.long), ids], dim=1)
        # targets: the characters, then the end of the item (0), then padding that is not counted
        position = torch.arange(max_len + 1).unsqueeze(0)  # (1, L + 1)
        self.y = torch.cat([ids, torch.zeros(len(items), 1, dtype=torch.long)], dim=1)
        self.y = self.y.masked_fill(position > self.lengths.unsqueeze(1), IGNORE_INDEX)
        self.n_targets = int((self.y != IGNORE_INDEX).sum())
        self.factors, self.births = factors, births
        self.weights: Tensor | None = None  # per item, for weighted sampling and weighted loss

    def __len__(self) -> int:
        return self.x.size(0)

    def batch(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        longest = int(self.lengths[rows].max())  # trim the right padding this batch does not need
        return self.x[rows, : self.pad + 1 + longest], self.y[rows, : longest + 1]


class Conditioner:
    """Puts each row's condition into a batch: its token in the padding and at the start
    ("tokens"), or its index for the model's `cond` argument ("global")."""

    def __init__(
        self, space: ConditionSpace, vocab_size: int, context_length: int, mode: str, dropout: float
    ) -> None:
        self.space, self.vocab_size, self.mode, self.dropout = space, vocab_size, mode, dropout
        self.start = context_length  # columns 0 .. context_length - 1: the left padding and the start
        self.table = space.lookup()
        self.absent = torch.tensor([len(v) for v in space.factors.values()])  # "left out", per factor

    def __call__(
        self, x: Tensor, factors: Tensor, gen: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """x (B, T) with its boundary padding; factors (B, F). With `gen`, each factor is left out
        with the dropout probability. Returns x for the model, and cond (B,) in "global" mode."""
        if gen is not None and self.dropout > 0:
            drop = torch.rand(factors.shape, generator=gen) < self.dropout
            factors = torch.where(drop, self.absent.expand_as(factors), factors)
        k = self.table[tuple(factors.unbind(1))]  # (B,) condition index, -1: none
        if self.mode == "global":
            return x, k + 1
        token = torch.where(k >= 0, k + self.vocab_size, 0)  # (B,)
        x = x.clone()
        x[:, : self.start] = token.unsqueeze(1)
        return x, None


@torch.inference_mode()
def item_losses(
    model: HierarchicalModel, data: Encoded, cond: Conditioner | None = None, batch_size: int = 2048
) -> tuple[Tensor, Tensor]:
    """Nats summed over each item's characters (end included), and how many there are: (N,), (N,)."""
    was_training = model.training
    model.eval()
    sums, counts = torch.zeros(len(data), dtype=torch.float64), torch.zeros(len(data), dtype=torch.long)
    for start in range(0, len(data), batch_size):
        rows = torch.arange(start, min(start + batch_size, len(data)))
        x, y = data.batch(rows)
        c = None
        if cond is not None and data.factors is not None:
            x, c = cond(x, data.factors[rows])
        logits, _ = model(x, cond=c)
        nll = F.cross_entropy(logits.transpose(1, 2), y, ignore_index=IGNORE_INDEX, reduction="none")
        sums[rows] = nll.double().sum(1)
        counts[rows] = (y != IGNORE_INDEX).sum(1)
    model.train(was_training)
    return sums, counts


def evaluate(
    model: HierarchicalModel, data: Encoded, cond: Conditioner | None = None, weighted: bool = False
) -> float:
    """Mean nats per predicted character over every item of `data`; `weighted`: each item's
    characters count by the item's weight, as the items are drawn in training."""
    sums, counts = item_losses(model, data, cond)
    if weighted and data.weights is not None:
        return float((sums * data.weights).sum() / (counts.double() * data.weights).sum())
    return float(sums.sum()) / int(counts.sum())


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


@dataclass
class Corpus:
    """What a run trains on: one text per item and, for a conditioned corpus, each item's factor
    values and births."""

    texts: list[str]
    factors: list[dict[str, Any]] | None = None  # per item, e.g. {"sex": "F", "decade": 1920}
    births: list[int] | None = None

    @classmethod
    def of_era(cls, items: list[EraItem]) -> Corpus:
        return cls(
            [it.name for it in items],
            [{"sex": it.sex, "decade": it.decade} for it in items],
            [it.births for it in items],
        )

    def without(self, held: set[str]) -> Corpus:
        keep = [i for i, s in enumerate(self.texts) if s not in held]
        return Corpus(
            [self.texts[i] for i in keep],
            None if self.factors is None else [self.factors[i] for i in keep],
            None if self.births is None else [self.births[i] for i in keep],
        )


@dataclass
class TrainResult:
    model: HierarchicalModel
    vocab: list[str]
    split: Split  # for a conditioned corpus: the names of each part
    metrics: dict[str, Any]
    history: list[dict[str, float]]  # one row per evaluation: step, train_loss, val_loss, lr
    wall_time_s: float
    space: ConditionSpace | None = None  # the model's conditions, if it has any


def train_model(
    cfg: TrainConfig, items: list[str] | Corpus, init: tuple[HierarchicalModel, list[str]] | None = None
) -> TrainResult:
    """Train on `items` (already read and checked; a Corpus for a conditioned one) and return the
    best-on-validation model. `init`: a trained model and its vocabulary, to start from."""
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    corpus = items if isinstance(items, Corpus) else Corpus(list(items))
    conditioned = corpus.factors is not None
    # by name: for a conditioned corpus the same name stands in several items, all in one part
    split = split_items(list(dict.fromkeys(corpus.texts)), cfg.val_fraction, cfg.test_fraction, cfg.seed)
    part_of = {s: k for k in ("train", "val", "test") for s in getattr(split, k)}
    vocab = [BOUNDARY, *sorted({c for s in corpus.texts for c in s})]
    space = None
    if conditioned and cfg.conditions != "none":
        space = ConditionSpace.build(cfg.conditions.split(","))

    torch.manual_seed(cfg.init_seed)
    model = HierarchicalModel(cfg.model_config(len(vocab), len(space) if space else 0))
    if init is not None:
        vocab = _check_init(init[0].config, init[1], model.config, vocab)
        model.load_state_dict(init[0].state_dict())
    stoi = {c: i for i, c in enumerate(vocab)}
    ctx = model.context_length
    data = {}
    rows_of = {
        k: [i for i, s in enumerate(corpus.texts) if part_of[s] == k] for k in ("train", "val", "test")
    }
    cells: dict[tuple[Any, ...], float] = {}  # births by sex and decade, for "share" weighting
    cell_of: list[tuple[Any, ...]] = []  # each item's sex and decade, as a key of `cells`
    if corpus.factors is not None and corpus.births is not None:
        cell_of = [tuple(sorted(f.items())) for f in corpus.factors]
        for key, b in zip(cell_of, corpus.births, strict=True):
            cells[key] = cells.get(key, 0.0) + b
    for k, rows in rows_of.items():
        factors = births = None
        if space is not None and corpus.factors is not None:
            factors = space.value_indices([corpus.factors[i] for i in rows])
        if corpus.births is not None:
            births = torch.tensor([corpus.births[i] for i in rows], dtype=torch.float64)
        data[k] = Encoded([corpus.texts[i] for i in rows], stoi, ctx, factors, births)
        if cfg.weighting != "none" and births is not None and corpus.factors is not None:
            cell = torch.tensor([cells[cell_of[i]] for i in rows])
            data[k].weights = WEIGHTINGS[cfg.weighting](births, cell)
    cond = None
    if space is not None:
        cond = Conditioner(space, len(vocab), ctx, cfg.conditioning, cfg.condition_dropout)
    weights = data["train"].weights
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
    train = data["train"]
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
    if conditioned:
        metrics["split"]["items"] = [len(data[k]) for k in ("train", "val", "test")]
        metrics.update(_by_condition(model, data["test"], cond, corpus, rows_of["test"]))
    return TrainResult(model, vocab, split, metrics, history, time.perf_counter() - t0, space)


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
    """Test loss by sex and decade (each item given its own condition, when the model has
    conditions), and over all items weighted by births."""
    sums, counts = item_losses(model, test, cond)
    assert corpus.factors is not None and test.births is not None
    groups: dict[str, dict[str, list[float]]] = {}
    for j, i in enumerate(rows):
        f = corpus.factors[i]
        cell = groups.setdefault(str(f["sex"]), {}).setdefault(str(f["decade"]), [0.0, 0.0])
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


def build_meta(
    cfg: TrainConfig,
    result: TrainResult,
    corpus_path: Path,
    corpus_sha: str,
    n_items: int,
    pretrained: dict[str, Any] | None = None,
) -> dict[str, Any]:
    prov = lookup_provenance(corpus_path, corpus_sha) or {}
    description = cfg.description or str(prov.get("description") or f"trained on {corpus_path.name}")
    mc = result.model.config
    meta: dict[str, Any] = {
        "name": cfg.name,
        "description": description,
        "vocab": result.vocab,
        "context_length": mc.context_length,
        "architecture": {
            "type": "hierarchical-wavenet",
            "n_embd": mc.n_embd,
            "hidden": list(mc.hidden),
            "dilations": mc.dilations,
            "dropout": mc.dropout,
            "fuse": "Linear(2*n_in -> n_out) -> LayerNorm -> tanh",
        },
        "parameters": result.model.num_parameters(),
        "metrics": result.metrics,
        "corpus": {
            "name": corpus_path.name.split(".")[0],
            "file": corpus_path.name,
            "source": prov.get("source", "user-supplied"),
            "licence": prov.get("licence", "unknown"),
            "items": n_items,
            "sha256": corpus_sha,
        },
        "training": {
            "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
            "wall_time_s": round(result.wall_time_s, 1),
            "threads": torch.get_num_threads(),
            "command": "python -m training train " + " ".join(_flags(cfg)),
        },
        "torch_version": torch.__version__,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if result.space is not None:
        meta["architecture"]["conditions"] = len(result.space)
        meta["conditions"] = result.space.meta(len(result.vocab), cfg.condition_dropout)
    meta["training"]["chain_wall_time_s"] = round(result.wall_time_s, 1)
    if pretrained is not None:
        meta["training"]["pretrained"] = pretrained
        meta["training"]["chain_wall_time_s"] = round(result.wall_time_s + pretrained["chain_wall_time_s"], 1)
    return meta


def _flags(cfg: TrainConfig) -> list[str]:
    default = TrainConfig()
    out = []
    for k, v in asdict(cfg).items():
        if k in ("progress", "threads") or (v == getattr(default, k) and k not in ("corpus", "name", "out")):
            continue
        flag = "--" + k.replace("_", "-")
        out += [flag, ",".join(map(str, v)) if isinstance(v, tuple) else str(v)]
    return out


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
    if is_conditioned(corpus_path):
        era, sha = read_era(corpus_path)
        items = Corpus.of_era(era)
        names = list(dict.fromkeys(items.texts))  # the checkpoint's items: every distinct name
        n_items = len(era)
    else:
        if cfg.conditioning == "global" or cfg.weighting != "none":
            raise ValueError("--conditioning global and --weighting apply to conditioned corpora (*.tsv.gz)")
        items, sha = read_items(corpus_path)
        names, n_items = list(items), len(items)
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out must be a directory, got a file: {out}")
    if cfg.exclude_held_out:
        held = held_out_of(cfg.exclude_held_out, cfg)
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
    result = train_model(cfg, items, init)
    meta = build_meta(cfg, result, corpus_path, sha, n_items, pretrained)
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


__all__ = ["CorpusError", "TrainConfig", "TrainResult", "run", "split_items", "train_model"]
