"""
What a training run produced (TrainResult), and what a trained checkpoint says about itself:
meta.json (shared/design.md's checkpoint contract), built from the run's settings, its result and
the corpus's provenance.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from training.conditions import ConditionSpace
from training.config import TrainConfig
from training.corpus import lookup_provenance
from training.data import Split
from training.model import HierarchicalModel


@dataclass
class TrainResult:
    model: HierarchicalModel
    vocab: list[str]
    split: Split  # for a conditioned corpus: the names of each part
    metrics: dict[str, Any]
    history: list[dict[str, float]]  # one row per evaluation: step, train_loss, val_loss, lr
    wall_time_s: float
    space: ConditionSpace | None = None  # the model's conditions, if it has any


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
    if isinstance(prov.get("countries"), dict):
        meta["corpus"]["countries"] = _countries(prov["countries"], cfg.countries)
    if result.space is not None:
        meta["architecture"]["conditions"] = len(result.space)
        meta["conditions"] = result.space.meta(len(result.vocab), cfg.condition_dropout)
    meta["training"]["chain_wall_time_s"] = round(result.wall_time_s, 1)
    if pretrained is not None:
        meta["training"]["pretrained"] = pretrained
        meta["training"]["chain_wall_time_s"] = round(result.wall_time_s + pretrained["chain_wall_time_s"], 1)
    return meta


# what /models shows of each country of a names-world corpus (corpora.json has more: how its lines
# were read and which were left out)
COUNTRY_FIELDS = ("country", "office", "counts", "licence", "female", "male")


def _countries(entries: dict[str, dict[str, Any]], only: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Each country the model was trained on: its name, office, what a count is, licence, and its
    girls' and boys' names in the corpus."""
    return {
        code: {k: entry[k] for k in COUNTRY_FIELDS if k in entry}
        for code, entry in sorted(entries.items())
        if not only or code in only
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
