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
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import os
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from training.corpus import BOUNDARY, CorpusError, lookup_provenance, read_items
from training.export import save_checkpoint
from training.model import IGNORE_INDEX, HierarchicalModel, ModelConfig

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


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
    seed: int = 1337  # split, initialisation, batches and dropout
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    progress: bool = True  # tqdm bar on stderr

    def validate(self) -> None:
        if not NAME_RE.match(self.name):
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
        self.model_config(2).validate()

    def model_config(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(
            vocab_size=vocab_size, n_embd=self.n_embd, hidden=tuple(self.hidden), dropout=self.dropout
        )


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


class Encoded:
    """Items as padded tensors: x (N, ctx + L) inputs and y (N, L + 1) targets."""

    def __init__(self, items: list[str], stoi: dict[str, int], context_length: int) -> None:
        self.lengths = torch.tensor([len(s) for s in items])
        max_len = int(self.lengths.max())
        self.pad = context_length - 1
        self.x = torch.zeros(len(items), self.pad + 1 + max_len, dtype=torch.long)
        self.y = torch.full((len(items), max_len + 1), IGNORE_INDEX, dtype=torch.long)
        for i, s in enumerate(items):
            ids = [stoi[c] for c in s]
            self.x[i, self.pad + 1 : self.pad + 1 + len(ids)] = torch.tensor(ids, dtype=torch.long)
            self.y[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            self.y[i, len(ids)] = 0  # the end of the item is predicted too
        self.n_targets = int((self.y != IGNORE_INDEX).sum())

    def __len__(self) -> int:
        return self.x.size(0)

    def batch(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        longest = int(self.lengths[rows].max())  # trim the right padding this batch does not need
        return self.x[rows, : self.pad + 1 + longest], self.y[rows, : longest + 1]


@torch.inference_mode()
def evaluate(model: HierarchicalModel, data: Encoded, batch_size: int = 2048) -> float:
    """Mean nats per predicted character over every item of `data`."""
    was_training = model.training
    model.eval()
    total = 0.0
    for start in range(0, len(data), batch_size):
        rows = torch.arange(start, min(start + batch_size, len(data)))
        x, y = data.batch(rows)
        logits, _ = model(x)
        total += F.cross_entropy(
            logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
        ).item()
    model.train(was_training)
    return total / data.n_targets


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
class TrainResult:
    model: HierarchicalModel
    vocab: list[str]
    split: Split
    metrics: dict[str, Any]
    history: list[dict[str, float]]  # one row per evaluation: step, train_loss, val_loss, lr
    wall_time_s: float


def train_model(cfg: TrainConfig, items: list[str]) -> TrainResult:
    """Train on `items` (already read and checked) and return the best-on-validation model."""
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    split = split_items(items, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    vocab = [BOUNDARY, *sorted({c for s in items for c in s})]
    stoi = {c: i for i, c in enumerate(vocab)}

    torch.manual_seed(cfg.seed)
    model = HierarchicalModel(cfg.model_config(len(vocab)))
    ctx = model.context_length
    data = {k: Encoded(getattr(split, k), stoi, ctx) for k in ("train", "val", "test")}
    opt = make_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)

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
        rows = torch.randint(len(data["train"]), (cfg.batch_size,), generator=gen)
        x, y = data["train"].batch(rows)
        _, loss = model(x, y)
        assert loss is not None
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        last = step == cfg.steps - 1
        if (step + 1) % cfg.eval_interval == 0 or last:
            val = evaluate(model, data["val"])
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
    metrics = {
        "train_loss": evaluate(model, data["train"]),
        "val_loss": evaluate(model, data["val"]),
        "test_loss": evaluate(model, data["test"]),
        "unit": "nats per character (end of item counted, padding not)",
        "best_step": best_step,
        "split": {
            "method": "items shuffled with random.Random(seed), then cut in order: train, val, test",
            "seed": cfg.seed,
            "fractions": [1 - cfg.val_fraction - cfg.test_fraction, cfg.val_fraction, cfg.test_fraction],
            "sizes": [len(split.train), len(split.val), len(split.test)],
        },
    }
    return TrainResult(model, vocab, split, metrics, history, time.perf_counter() - t0)


def build_meta(
    cfg: TrainConfig, result: TrainResult, corpus_path: Path, corpus_sha: str, n_items: int
) -> dict[str, Any]:
    prov = lookup_provenance(corpus_path, corpus_sha) or {}
    description = cfg.description or str(prov.get("description") or f"trained on {corpus_path.name}")
    mc = result.model.config
    return {
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
            "name": corpus_path.stem,
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
    """Read the corpus, train, and write <out>/<name>.pt, .metrics.json and .loss.png.

    Raises CorpusError or ValueError, before anything is written, for bad input."""
    cfg.validate()
    corpus_path = Path(cfg.corpus)
    items, sha = read_items(corpus_path)
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out must be a directory, got a file: {out}")
    result = train_model(cfg, items)
    meta = build_meta(cfg, result, corpus_path, sha, len(items))
    out.mkdir(parents=True, exist_ok=True)
    ckpt = save_checkpoint(result.model, meta, items, out / f"{cfg.name}.pt")
    report = {k: v for k, v in meta.items() if k not in ("vocab",)}
    report["history"] = result.history
    report["checkpoint"] = ckpt.name
    tmp = out / f".{cfg.name}.metrics.json.tmp"
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, out / f"{cfg.name}.metrics.json")
    plot_history(
        result.history, f"{cfg.name}: {meta['parameters']:,} parameters", out / f"{cfg.name}.loss.png"
    )
    return meta


__all__ = ["CorpusError", "TrainConfig", "TrainResult", "run", "split_items", "train_model"]
