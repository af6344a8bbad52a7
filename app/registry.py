"""
The model registry: every `*.pt` checkpoint in a folder, loaded with `torch.jit.load` and checked
against the checkpoint contract before the service accepts a request.

A checkpoint must carry `meta.json` (name, vocabulary with the boundary "." first, context length,
metrics, corpus, ...) and `items.txt` (its corpus), and its `forward(idx (B, T)) -> (B, V)` must
answer with one logit per vocabulary entry. Checkpoints that also export `init_state`/`step` are
driven incrementally (one fused vector per level per character); older ones through `forward` over
the whole context. Nothing here imports FastAPI or training/.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from app.engine import MIN_ROWS, BatchLoop, StepAdapter

logger = logging.getLogger("namegen.registry")

META_FILE = "meta.json"
ITEMS_FILE = "items.txt"
BOUNDARY = "."
END_LABEL = "<end>"  # what the API calls the boundary when it comes next
SUPPORTED_FORMATS = (1,)
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
REQUIRED_META: dict[str, type | tuple[type, ...]] = {
    "format_version": int,
    "name": str,
    "description": str,
    "vocab": list,
    "context_length": int,
    "architecture": dict,
    "parameters": int,
    "metrics": dict,
    "corpus": dict,
    "created_at": str,
}


class CheckpointError(Exception):
    """A checkpoint (or models folder) the service cannot use; the message names the file."""


@dataclass
class LoadedModel:
    name: str
    path: Path
    module: torch.jit.ScriptModule
    meta: dict[str, Any]
    vocab: list[str]
    items: frozenset[str]
    sha256: str
    size_bytes: int
    load_seconds: float
    incremental: bool  # exports init_state/step (Fast WaveNet) rather than only forward
    stoi: dict[str, int] = field(init=False)
    alphabet: str = field(init=False)  # every character a prefix or name may use
    labels: list[str] = field(init=False)  # each token as next-char reports it: the boundary as END_LABEL
    # what drives the checkpoint one token at a time: the checkpoint itself, or an adapter over
    # its forward(); and the scripted loop that runs a whole batch through it (app/engine.py)
    stepper: torch.jit.ScriptModule = field(init=False, repr=False)
    loop: torch.jit.ScriptModule = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.stoi = {c: i for i, c in enumerate(self.vocab)}
        self.alphabet = "".join(self.vocab[1:])
        self.labels = [END_LABEL, *self.vocab[1:]]
        label_order = sorted(range(len(self.labels)), key=self.labels.__getitem__)  # next-char ties
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 flags TorchScript as legacy
            if self.incremental:
                self.stepper = self.module
            else:
                self.stepper = torch.jit.script(StepAdapter(self.module, self.context_length))
            self.loop = torch.jit.script(BatchLoop(self.stepper, MIN_ROWS, label_order))
        with torch.inference_mode():
            self.loop.start()

    @property
    def context_length(self) -> int:
        return int(self.meta["context_length"])

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        return [self.stoi[c] for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.vocab[i] for i in ids)

    def unknown_chars(self, text: str) -> list[str]:
        """Characters of `text` outside this model's alphabet, in order of first appearance."""
        return list(dict.fromkeys(c for c in text if c not in self.stoi or c == BOUNDARY))


def _read_extra(path: Path) -> tuple[torch.jit.ScriptModule, dict[str, str]]:
    extra: dict[str, Any] = {META_FILE: "", ITEMS_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 flags TorchScript as legacy
        try:
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)  # type: ignore[no-untyped-call]
        except Exception as e:  # torch raises RuntimeError, ValueError, zipfile errors...
            reason = str(e).strip()
            first = reason.splitlines()[0].split(". ")[0] if reason else type(e).__name__
            raise CheckpointError(f"{path}: not a loadable TorchScript checkpoint ({first})") from None
    text = {k: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for k, v in extra.items()}
    return module, text


def _check_meta(path: Path, raw: str) -> dict[str, Any]:
    if not raw.strip():
        raise CheckpointError(f"{path}: no {META_FILE} in the archive")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: {META_FILE} is not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: {META_FILE} must be a JSON object")
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: {META_FILE} lacks {', '.join(missing)}")
    for key, kind in REQUIRED_META.items():
        if not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            raise CheckpointError(f"{path}: {META_FILE} field {key!r} has the wrong type")
    if meta["format_version"] not in SUPPORTED_FORMATS:
        raise CheckpointError(
            f"{path}: format_version {meta['format_version']} is not supported (supported: "
            f"{', '.join(map(str, SUPPORTED_FORMATS))})"
        )
    if not NAME_RE.match(meta["name"]):
        raise CheckpointError(f"{path}: model name {meta['name']!r} is not of the form {NAME_RE.pattern}")
    vocab = meta["vocab"]
    if (
        len(vocab) < 2
        or vocab[0] != BOUNDARY
        or not all(isinstance(c, str) and len(c) == 1 for c in vocab)
        or len(set(vocab)) != len(vocab)
    ):
        raise CheckpointError(
            f"{path}: vocab must be distinct single characters with the boundary {BOUNDARY!r} first"
        )
    if meta["context_length"] < 1:
        raise CheckpointError(f"{path}: context_length must be positive")
    for key in ("train_loss", "val_loss", "test_loss"):
        value = meta["metrics"].get(key)
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise CheckpointError(f"{path}: metrics.{key} must be a number")
    for key in ("name", "source", "licence", "items", "sha256"):
        if key not in meta["corpus"]:
            raise CheckpointError(f"{path}: corpus.{key} is missing")
    return meta


@torch.inference_mode()
def _check_module(path: Path, module: torch.jit.ScriptModule, meta: dict[str, Any]) -> bool:
    """Check forward's output shape; check the incremental methods, if any, agree with forward."""
    V, ctx = len(meta["vocab"]), meta["context_length"]
    probe = torch.zeros(2, ctx, dtype=torch.long)
    probe[1, -1] = 1  # one sequence that has seen a real character
    try:
        out = module(probe)
    except Exception as e:
        raise CheckpointError(f"{path}: forward failed on a ({2}, {ctx}) batch: {type(e).__name__}") from None
    if not isinstance(out, Tensor) or tuple(out.shape) != (2, V):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise CheckpointError(f"{path}: forward must return (B, {V}) logits, got {shape}")
    if not bool(torch.isfinite(out).all()):
        raise CheckpointError(f"{path}: forward returned non-finite logits")
    incremental = hasattr(module, "init_state") and hasattr(module, "step")
    if incremental:
        try:
            state = module.init_state(2)
            _, state = module.step(torch.zeros(2, dtype=torch.long), state)  # the start boundary
            logits, _ = module.step(probe[:, -1], state)
        except Exception as e:
            raise CheckpointError(f"{path}: init_state/step failed: {type(e).__name__}") from None
        expected = module(torch.cat([torch.zeros(2, 1, dtype=torch.long), probe[:, -1:]], dim=1))
        if tuple(logits.shape) != (2, V) or float((logits - expected).abs().max()) > 1e-4:
            raise CheckpointError(f"{path}: step() disagrees with forward()")
    return incremental


def load_checkpoint(path: Path) -> LoadedModel:
    """Load and check one checkpoint; raise CheckpointError naming the file otherwise."""
    t0 = time.perf_counter()
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror})") from None
    module, extra = _read_extra(path)
    meta = _check_meta(path, extra[META_FILE])
    items = frozenset(s for s in extra[ITEMS_FILE].splitlines() if s)
    if not items:
        raise CheckpointError(f"{path}: no {ITEMS_FILE} (the training items) in the archive")
    module.eval()
    incremental = _check_module(path, module, meta)
    model = LoadedModel(
        name=meta["name"],
        path=path,
        module=module,
        meta=meta,
        vocab=list(meta["vocab"]),
        items=items,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        load_seconds=0.0,
        incremental=incremental,
    )
    model.load_seconds = time.perf_counter() - t0  # scripting its batch loop included
    return model


@dataclass
class Registry:
    models: dict[str, LoadedModel]
    default: str
    skipped: dict[str, str] = field(default_factory=dict)  # file -> why, when skipping bad models

    def names(self) -> list[str]:
        return sorted(self.models)


def load_registry(models_dir: Path, default: str | None = None, skip_bad: bool = False) -> Registry:
    """Load every *.pt in `models_dir`. Bad checkpoints raise CheckpointError, or with
    `skip_bad` are logged and left out. Raises too when nothing loads or `default` is absent."""
    if not models_dir.is_dir():
        raise CheckpointError(f"{models_dir}: models folder does not exist")
    paths = sorted(p for p in models_dir.glob("*.pt") if not p.name.startswith("."))
    if not paths:
        raise CheckpointError(f"{models_dir}: no checkpoints (*.pt) in the models folder")
    models: dict[str, LoadedModel] = {}
    skipped: dict[str, str] = {}
    for path in paths:
        try:
            model = load_checkpoint(path)
            if model.name in models:
                raise CheckpointError(
                    f"{path}: model name {model.name!r} is already taken by {models[model.name].path}"
                )
        except CheckpointError as e:
            if not skip_bad:
                raise
            logger.warning("skipping checkpoint: %s", e)
            skipped[str(path)] = str(e)
            continue
        models[model.name] = model
        logger.info(
            "loaded model %s from %s (%d bytes, %d parameters, %s, %.0f ms)",
            model.name,
            path,
            model.size_bytes,
            model.meta["parameters"],
            "incremental" if model.incremental else "forward-only",
            model.load_seconds * 1000,
        )
    if not models:
        raise CheckpointError(f"{models_dir}: no checkpoint could be loaded")
    if default is None:
        default = "names" if "names" in models else sorted(models)[0]
    elif default not in models:
        raise CheckpointError(
            f"default model {default!r} is not among the loaded models: {', '.join(sorted(models))}"
        )
    return Registry(models=models, default=default, skipped=skipped)
