"""
Export a trained HierarchicalModel as a TorchScript checkpoint that the service loads with
`torch.jit.load` and nothing from training/ (the checkpoint contract in the README):

- forward(idx (B, T) int64) -> (B, V) float: next-token logits after the last T tokens (left-padded
  with the boundary token, or cut to the last context_length tokens);
- init_state(batch_size) -> the state of B sequences that have seen only boundary tokens: a list
  of (B, H) tensors, for each level in turn what its last `dilation` inputs contribute to its
  output (bias + input @ W_prev, see ScriptedGenerator), oldest first;
- step(idx (B,) int64, state) -> ((B, V) logits, new state): feed one token per sequence
  (Fast WaveNet: each level keeps a queue for its last `dilation` inputs, so a step costs one fused
  vector per level). The queues are lists of tensors, not (B, dilation, H) tensors: a step
  then moves no data, it drops the oldest entry and appends the new one. The tensors of the state
  passed in are overwritten (the oldest entry of each queue becomes working memory);
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
import math
import os
import tempfile
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
    torchscript,
    write_manifest,
)
from training.model import Ensemble, HierarchicalModel, ModelConfig


class ScriptedGenerator(nn.Module):
    """The inference-time view of a trained model, with the methods of the checkpoint contract.

    `forward` is the training model's computation. `step` computes the same function in a cheaper
    form, from tensors derived here once:
    - each level's Linear is split into the half that reads the input at t - dilation (W_prev)
      and the half that reads the input at t (W_cur). An input's W_prev product (plus the bias) is
      made when the input arrives and queued, so a step does two (B, n_in) x (n_in, H) products and
      no concatenation;
    - the queued product is the start of the level's pre-activation: the W_cur product is added to
      it in place (addmm_), so `step` overwrites the state tensors it is given (it returns the new
      state; a caller that wants to keep the old one passes a clone);
    - tanh(y) is written 2 * sigmoid(2y) - 1 (torch's sigmoid costs a third of its tanh on CPU):
      the LayerNorm's scale and shift are doubled, and the "2s - 1" is folded into the weights and
      bias of whatever reads the level's output (the next level, or the output layer).
    The result equals `forward` to float32 rounding (tests/training/test_export.py); what this form
    saves is measured in docs/performance.md."""

    context_length: torch.jit.Final[int]
    dilations: list[int]
    eps: list[float]
    w_prev: list[Tensor]  # (n_in, H) per level, transposed for x @ w
    w_cur: list[Tensor]  # (n_in, H)
    bias: list[Tensor]  # (H,) the Linear's bias, with the folded "- 1" of the input
    norm_weight: list[Tensor]  # (H,) 2 x the LayerNorm's
    norm_bias: list[Tensor]  # (H,)
    # addmm's beta, read from here rather than written as a constant: TorchScript's executor
    # rewrites an addmm whose beta and alpha are the constant 1 into mm + add, a second pass over
    # the (B, H) output that costs a fifth of the product at B = 1000
    one: float

    def __init__(self, model: HierarchicalModel) -> None:
        super().__init__()
        self.context_length = model.context_length
        self.wte = model.wte
        self.levels = model.levels
        self.lm_head = model.lm_head
        self.dilations, self.eps, self.one = [], [], 1.0
        self.w_prev, self.w_cur, self.bias, self.norm_weight, self.norm_bias = [], [], [], [], []
        with torch.no_grad():
            for i, level in enumerate(model.levels):
                w, b = level.linear.weight, level.linear.bias  # (H, 2 n_in), (H,)
                n_in = w.size(1) // 2
                wp, wc = w[:, :n_in], w[:, n_in:]
                if i > 0:  # the input is 2s - 1: x @ W.T = s @ (2W).T - W.sum(1)
                    b = b - wp.sum(1) - wc.sum(1)
                    wp, wc = 2 * wp, 2 * wc
                self.w_prev.append(wp.t().contiguous())
                self.w_cur.append(wc.t().contiguous())
                self.bias.append(b.clone())
                self.norm_weight.append(2 * level.norm.weight)
                self.norm_bias.append(2 * level.norm.bias)
                self.dilations.append(level.dilation)
                self.eps.append(level.norm.eps)
            w = model.lm_head.weight  # (V, H)
            self.out_weight = (2 * w).t().contiguous()  # (H, V)
            self.out_bias = model.lm_head.bias - w.sum(1)  # (V,)

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

    def _level(self, i: int, queued: Tensor, x: Tensor) -> Tensor:
        # queued: (B, H) bias + (input at t - dilation) @ w_prev; x: (B, n_in) -> s (B, H)
        h = queued.addmm_(x, self.w_cur[i], beta=self.one)
        y = F.layer_norm(h, [h.size(1)], self.norm_weight[i], self.norm_bias[i], self.eps[i])
        return y.sigmoid_()  # the level's output is 2s - 1, never formed

    @torch.jit.export
    def init_state(self, batch_size: int) -> list[Tensor]:
        # each level's queue: for its last `dilation` inputs (boundary-padded positions here),
        # bias + input @ w_prev, oldest first
        x = self.wte.weight[0].unsqueeze(0)  # (1, C)
        state: list[Tensor] = []
        for i, d in enumerate(self.dilations):
            queued = torch.addmm(self.bias[i], x, self.w_prev[i], beta=self.one)  # (1, H), as in step
            for _ in range(d):
                state.append(queued.expand(batch_size, queued.size(1)).clone())  # (B, H)
            x = self._level(i, queued.clone(), x)
        return state

    @torch.jit.export
    def step(self, idx: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        x = self.wte(idx)  # (B, C)
        new_state: list[Tensor] = []
        start = 0  # where the current level's queue begins in `state`
        for i, d in enumerate(self.dilations):
            queued = state[start]  # (B, H): from this level's input at t - dilation
            new_state.extend(state[start + 1 : start + d])  # from the inputs at t - dilation + 1 .. t - 1
            # from the input at t
            new_state.append(torch.addmm(self.bias[i], x, self.w_prev[i], beta=self.one))
            x = self._level(i, queued, x)  # (B, H)
            start += d
        return torch.addmm(self.out_bias, x, self.out_weight, beta=self.one), new_state  # (B, V)


class ScriptedEnsemble(nn.Module):
    """An Ensemble (training/model.py) with the methods of the checkpoint contract: each member is
    a ScriptedGenerator, and every output is the log of the members' mean next-token probability,
    which is what `forward` of the training Ensemble computes. The state is the members' states one
    after the other (each a list of (B, H) tensors), so a caller still only selects its rows."""

    context_length: torch.jit.Final[int]
    state_sizes: list[int]  # tensors of each member's state
    log_members: float

    def __init__(self, ensemble: Ensemble) -> None:
        super().__init__()
        self.context_length = ensemble.context_length
        self.members = nn.ModuleList([ScriptedGenerator(m) for m in ensemble.members])
        self.state_sizes = [sum(m.config.dilations) for m in ensemble.members]
        self.log_members = math.log(len(ensemble.members))

    def _mix(self, logits: list[Tensor]) -> Tensor:
        logp = torch.stack([F.log_softmax(x, dim=1) for x in logits])  # (K, B, V)
        return torch.logsumexp(logp, dim=0) - self.log_members  # (B, V)

    def forward(self, idx: Tensor) -> Tensor:
        logits: list[Tensor] = []
        for member in self.members:
            logits.append(member(idx))
        return self._mix(logits)

    @torch.jit.export
    def init_state(self, batch_size: int) -> list[Tensor]:
        state: list[Tensor] = []
        for member in self.members:
            state.extend(member.init_state(batch_size))
        return state

    @torch.jit.export
    def step(self, idx: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        logits: list[Tensor] = []
        new_state: list[Tensor] = []
        start = 0
        for i, member in enumerate(self.members):
            end = start + self.state_sizes[i]
            out, member_state = member.step(idx, state[start:end])
            logits.append(out)
            new_state.extend(member_state)
            start = end
        return self._mix(logits), new_state


def script_model(model: HierarchicalModel | Ensemble) -> torch.jit.ScriptModule:
    if model.config.n_conditions and model.config.conditioning != "tokens":
        raise ValueError(
            "only 'tokens' conditioning can be exported: a checkpoint's forward takes tokens alone"
        )
    model = model.eval()
    if isinstance(model, Ensemble):
        return torchscript.script(ScriptedEnsemble(model))
    return torchscript.script(ScriptedGenerator(model))


def save_checkpoint(
    model: HierarchicalModel | Ensemble, meta: dict[str, Any], items: list[str], path: Path
) -> Path:
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
        # twice: the digests of the first archive's entries go into the second, whose entries
        # are the same bytes but for digests.json and the random serialization id
        torchscript.save(scripted, staged, extra)
        extra[DIGESTS_FILE] = json.dumps(entry_digests(staged.read_bytes()), indent=1, sort_keys=True)
        torchscript.save(scripted, staged, extra)
        data = staged.read_bytes()
        report = check_archive(data)  # every digest matches: the two saves agreed
        assert report.digests and report.root == path.stem, report.root
        os.replace(staged, path)
    write_manifest(path.parent, {path.name: sha256_hex(data)})
    return path


def _config(arch: dict[str, Any], vocab_size: int) -> ModelConfig:
    """A member's ModelConfig from its meta.json architecture."""
    return ModelConfig(
        vocab_size=vocab_size, n_embd=arch["n_embd"], hidden=tuple(arch["hidden"]),
        dropout=arch["dropout"], n_conditions=arch.get("conditions", 0),
    )  # fmt: skip


def load_trained(path: Path) -> tuple[HierarchicalModel | Ensemble, dict[str, Any], list[str]]:
    """The trained model in a checkpoint (rebuilt from its meta.json and weights), with its
    metadata and items: what `save_checkpoint` needs to write it again."""
    data = Path(path).read_bytes()
    try:
        check_archive(data)  # never re-export or fine-tune from damaged bytes
    except ArchiveError as e:
        raise ValueError(f"{path}: not a TorchScript checkpoint ({e})") from None
    try:
        scripted, extra = torchscript.load(data, (META_FILE, ITEMS_FILE))
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: not a TorchScript checkpoint ({first})") from None
    try:
        meta = json.loads(extra[META_FILE])
        arch = meta["architecture"]
        model: HierarchicalModel | Ensemble
        if arch.get("type") == "ensemble":
            model = Ensemble([HierarchicalModel(_config(a, len(meta["vocab"]))) for a in arch["members"]])
        else:
            model = HierarchicalModel(_config(arch, len(meta["vocab"])))
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: meta.json does not describe the model ({type(e).__name__}: {e})") from None
    try:
        model.load_state_dict(scripted.state_dict())
    except RuntimeError as e:
        raise ValueError(f"{path}: the weights do not match meta.json's architecture: {e}") from None
    items = extra[ITEMS_FILE].splitlines()
    return model.eval(), meta, items


def reexport(path: Path, out: Path) -> Path:
    """Write the checkpoint at `path` again with this exporter (its TorchScript methods), keeping
    its weights, metadata and items unchanged. `out` may be `path` itself."""
    model, meta, items = load_trained(path)
    return save_checkpoint(model, meta, items, out)
