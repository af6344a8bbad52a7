"""
Export a trained HierarchicalModel as a TorchScript checkpoint that the service loads with
`torch.jit.load` and nothing from training/ (the checkpoint contract in the README):

- forward(idx (B, T) int64) -> (B, V) float: next-token logits after the last T tokens (left-padded
  with the boundary token, or cut to the last context_length tokens);
- init_state(batch_size) -> the state of B sequences that have seen only boundary tokens: a list
  of (B, n_in) tensors, for each level in turn its last `dilation` inputs, oldest first;
- step(idx (B,) int64, state) -> ((B, V) logits, new state): feed one token per sequence
  (Fast WaveNet: each level keeps a queue of its last `dilation` inputs, so a step costs one fused
  vector per level). The queues are lists of tensors, not (B, dilation, n_in) tensors: a step
  then moves no data, it drops the oldest entry and appends the new input;
- extra files: meta.json (metadata, see build_meta in train.py), items.txt (the corpus items,
  one per line, so the service can tell known names from new ones) and digests.json (the sha256
  of every other entry; see checkpoint_format).

The archive is written in a temporary folder beside its destination under its final file name (so
its entries sit under NAME/, as torch names the root after the file), then renamed into place, so
a failed export never leaves a half-written checkpoint. SHA256SUMS in the destination folder is
updated with the new file's sha256.
"""

# no `from __future__ import annotations` here: TorchScript reads these annotations at runtime
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from checkpoint_format import (
    DIGESTS_FILE,
    FORMAT_VERSION,
    ITEMS_FILE,
    META_FILE,
    ArchiveError,
    check_archive,
    entry_digests,
    sha256_hex,
    write_manifest,
)
from training.model import HierarchicalModel, ModelConfig


class ScriptedGenerator(nn.Module):
    """The inference-time view of a trained model, with the methods of the checkpoint contract."""

    context_length: torch.jit.Final[int]

    def __init__(self, model: HierarchicalModel) -> None:
        super().__init__()
        self.context_length = model.context_length
        self.wte = model.wte
        self.levels = model.levels
        self.lm_head = model.lm_head

    def forward(self, idx: Tensor) -> Tensor:
        T = idx.size(1)
        if self.context_length > T:
            idx = F.pad(idx, (self.context_length - T, 0), value=0.0)  # boundary = 0
        elif self.context_length < T:
            idx = idx[:, T - self.context_length :]
        x = self.wte(idx)  # (B, ctx, C)
        for level in self.levels:
            x = level(x)  # (B, ctx - (sum of dilations so far), H)
        return self.lm_head(x[:, -1])  # (B, V)

    @torch.jit.export
    def init_state(self, batch_size: int) -> list[Tensor]:
        # every level's queue holds what that level saw at the boundary-padded positions
        x = self.wte.weight[0].unsqueeze(0)  # (1, C)
        state: list[Tensor] = []
        for level in self.levels:
            for _ in range(level.dilation):
                state.append(x.expand(batch_size, x.size(-1)).clone())  # (B, n_in)
            x = level.fuse_step(x, x)  # (1, H)
        return state

    @torch.jit.export
    def step(self, idx: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        x = self.wte(idx)  # (B, C)
        new_state: list[Tensor] = []
        start = 0  # where the current level's queue begins in `state`
        for level in self.levels:
            d: int = level.dilation
            prev = state[start]  # (B, n_in): this level's input at t - dilation
            new_state.extend(state[start + 1 : start + d])  # inputs at t - dilation + 1 .. t - 1
            new_state.append(x)
            x = level.fuse_step(prev, x)  # (B, n_out)
            start += d
        return self.lm_head(x), new_state


def script_model(model: HierarchicalModel) -> torch.jit.ScriptModule:
    if model.config.n_conditions and model.config.conditioning != "tokens":
        raise ValueError(
            "only 'tokens' conditioning can be exported: a checkpoint's forward takes tokens alone"
        )
    model = model.eval()
    return torch.jit.script(ScriptedGenerator(model))


def save_checkpoint(model: HierarchicalModel, meta: dict[str, Any], items: list[str], path: Path) -> Path:
    """Script the model and write it with its metadata, items and entry digests to `path`,
    atomically, and record its sha256 in SHA256SUMS beside it."""
    scripted = script_model(model)
    meta = {**meta, "format_version": FORMAT_VERSION}
    extra = {
        META_FILE: json.dumps(meta, indent=2, sort_keys=True),
        ITEMS_FILE: "\n".join(items) + "\n",
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as tmp:
        staged = Path(tmp) / path.name  # torch names the archive's root folder after the file
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 flags TorchScript as legacy
            # twice: the digests of the first archive's entries go into the second, whose entries
            # are the same bytes but for digests.json and the random serialization id
            torch.jit.save(scripted, str(staged), _extra_files=extra)
            extra[DIGESTS_FILE] = json.dumps(entry_digests(staged.read_bytes()), indent=1, sort_keys=True)
            torch.jit.save(scripted, str(staged), _extra_files=extra)
        data = staged.read_bytes()
        report = check_archive(data)  # every digest matches: the two saves agreed
        assert report.digests and report.root == path.stem, report.root
        os.replace(staged, path)
    write_manifest(path.parent, {path.name: sha256_hex(data)})
    return path


def load_trained(path: Path) -> tuple[HierarchicalModel, dict[str, Any], list[str]]:
    """The trained model in a checkpoint (rebuilt from its meta.json and weights), with its
    metadata and items: what `save_checkpoint` needs to write it again."""
    extra: dict[str, Any] = {META_FILE: "", ITEMS_FILE: ""}
    try:
        check_archive(Path(path).read_bytes())  # never re-export or fine-tune from damaged bytes
    except ArchiveError as e:
        raise ValueError(f"{path}: not a TorchScript checkpoint ({e})") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 flags TorchScript as legacy
        try:
            scripted = torch.jit.load(str(path), _extra_files=extra)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"{path}: not a TorchScript checkpoint ({first})") from None
    try:
        meta = json.loads(extra[META_FILE])
        arch = meta["architecture"]
        config = ModelConfig(
            vocab_size=len(meta["vocab"]), n_embd=arch["n_embd"], hidden=tuple(arch["hidden"]),
            dropout=arch["dropout"], n_conditions=arch.get("conditions", 0),
        )  # fmt: skip
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: meta.json does not describe the model ({type(e).__name__}: {e})") from None
    model = HierarchicalModel(config)
    try:
        model.load_state_dict(scripted.state_dict())
    except RuntimeError as e:
        raise ValueError(f"{path}: the weights do not match meta.json's architecture: {e}") from None
    items = extra[ITEMS_FILE]
    items = (items.decode() if isinstance(items, bytes) else items).splitlines()
    return model.eval(), meta, items


def reexport(path: Path, out: Path) -> Path:
    """Write the checkpoint at `path` again with this exporter (its TorchScript methods), keeping
    its weights, metadata and items unchanged. `out` may be `path` itself."""
    model, meta, items = load_trained(path)
    return save_checkpoint(model, meta, items, out)
