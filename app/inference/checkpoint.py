"""
Loading one checkpoint file, checked byte for byte and against the checkpoint contract, into a
LoadedModel (app/inference/loaded.py); app/inference/registry.py does this for a whole folder.

What a checkpoint must pass (each failure is one CheckpointError naming the file and the part):
- integrity (checkpoint_format): the zip structure, every entry's CRC-32, the sha256 of every entry
  listed in its digests.json (format 2), and, where the folder has a SHA256SUMS, the whole file's
  sha256 there. A folder without SHA256SUMS is loaded with the first checks only, and says so;
- contract: meta.json complete and named after the file (`NAME.pt` holds model NAME), items.txt
  present, `forward(idx (B, T)) -> (B, V)`, and, for checkpoints that export `init_state`/`step`,
  every position of a probe longer than the context giving the same logits both ways;
- compiling the scripted batch loop (app/inference/engine.py) over it, and running its start.

Nothing here imports FastAPI or training/.
"""

from __future__ import annotations

import json
import math
import time
import unicodedata
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from app.config import MAX_CHECKPOINT_BYTES
from app.inference.engine import MIN_ROWS, BatchLoop, StepAdapter
from app.inference.items import ItemSet
from app.inference.loaded import Conditions, Integrity, LoadedModel
from checkpoint_format import (
    BOUNDARY,
    DIGESTS_FILE,
    END_LABEL,
    ITEMS_FILE,
    MANIFEST,
    META_FILE,
    MODEL_NAME_RE,
    SUPPORTED_FORMATS,
    ArchiveError,
    check_archive,
    read_regular_file,
    sha256_hex,
    torchscript,
)

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
STEP_TOLERANCE = 1e-4  # largest |step - forward| logit difference accepted
CHECK_WINDOWS = 256  # windows of the probe that one forward call of the step check takes, at most


class CheckpointError(Exception):
    """A checkpoint (or models folder) the service cannot use; the message names the file."""


def _check_meta(path: Path, raw: bytes | None) -> dict[str, Any]:
    if raw is None or not raw.strip():
        raise CheckpointError(f"{path}: no {META_FILE} in the archive")
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f"{e.msg} at line {e.lineno}" if isinstance(e, json.JSONDecodeError) else "not UTF-8"
        raise CheckpointError(f"{path}: {META_FILE} is not valid JSON ({where})") from None
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
    if not MODEL_NAME_RE.match(meta["name"]):
        raise CheckpointError(
            f"{path}: model name {meta['name']!r} is not of the form {MODEL_NAME_RE.pattern}"
        )
    if meta["name"] != path.stem:
        raise CheckpointError(
            f"{path}: holds model {meta['name']!r}; a checkpoint is named after its model "
            f"({meta['name']}.pt): was it renamed or swapped?"
        )
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
    # any script's letters, each as NFC writes it: requests are normalised to NFC before they are
    # matched against the vocabulary, so a character NFC rewrites could never be asked for
    odd = [c for c in vocab[1:] if not c.isprintable() or unicodedata.normalize("NFC", c) != c]
    if odd:
        raise CheckpointError(
            f"{path}: vocab characters must be printable and in NFC; these are not: "
            f"{', '.join(f'U+{ord(c):04X}' for c in odd)}"
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


def _probe(vocab_size: int, context_length: int) -> list[int]:
    """A text longer than the context that uses every token: each level's queue must then both
    fill and forget correctly for the step logits to match forward's at every position."""
    length = 2 * context_length + 3
    return [1 + (7 * i) % (vocab_size - 1) for i in range(length)]


@torch.inference_mode()
def _check_module(
    path: Path, module: torch.jit.ScriptModule, meta: dict[str, Any], starts: list[int]
) -> bool:
    """Check forward's output; for checkpoints with init_state/step, check that stepping through
    a probe text after each start token gives forward's logits at every position. Returns whether
    the checkpoint is incremental."""
    V, ctx = len(meta["vocab"]), meta["context_length"]
    probe = torch.zeros(2, ctx, dtype=torch.long)
    probe[1, -1] = 1  # one sequence that has seen a real character
    try:
        out = module(probe)
    except Exception as e:
        raise CheckpointError(f"{path}: forward failed on a (2, {ctx}) batch: {type(e).__name__}") from None
    if not isinstance(out, Tensor) or tuple(out.shape) != (2, V):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise CheckpointError(f"{path}: forward must return (B, {V}) logits, got {shape}")
    if not bool(torch.isfinite(out).all()):
        raise CheckpointError(f"{path}: forward returned non-finite logits")
    incremental = hasattr(module, "init_state") and hasattr(module, "step")
    if not incremental:
        return False
    text = torch.tensor(_probe(V, ctx))
    rows = starts if len(starts) > 1 else starts * 2  # at least 2 rows: the batch must be first
    B, L = len(rows), text.numel()
    # each row: its start token filling the context (the boundary, or a condition), then the probe
    history = torch.cat([torch.tensor(rows).unsqueeze(1).expand(B, ctx), text.expand(B, L)], dim=1)
    try:
        state = module.init_state(B)
        for _ in range(ctx):
            logits, state = module.step(history[:, 0], state)
        stepped = []
        for t in range(L + 1):
            _check_step_output(path, logits, state, B, V)
            stepped.append(logits)
            if t < L:
                logits, state = module.step(history[:, ctx + t], state)
        # forward over every position's window: (L + 1) windows of the last ctx tokens per row, a
        # few rows per call, so that a model with many start tokens (31 for names-era) does not
        # hold the activations of a thousand windows at once (the heap keeps what they took)
        windows = history.unfold(1, ctx, 1)  # (B, L + 1, ctx)
        per_call = max(1, CHECK_WINDOWS // (L + 1))
        calls = [module(windows[i : i + per_call].reshape(-1, ctx)) for i in range(0, B, per_call)]
        expected = torch.cat(calls)  # (B * (L + 1), V)
        worst = float((torch.stack(stepped, dim=1).reshape(-1, V) - expected).abs().max())
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(
            f"{path}: init_state/step failed: {type(e).__name__}: {_first_line(e)}"
        ) from None
    if not worst <= STEP_TOLERANCE:  # NaN fails too
        raise CheckpointError(
            f"{path}: step() disagrees with forward() on a probe of {L} tokens (largest "
            f"logit difference {worst:.3g}, allowed {STEP_TOLERANCE})"
        )
    return True


def _check_step_output(path: Path, logits: object, state: object, B: int, V: int) -> None:
    if not isinstance(logits, Tensor) or tuple(logits.shape) != (B, V):
        raise CheckpointError(f"{path}: step() must return ({B}, {V}) logits")
    if not isinstance(state, list) or not all(
        isinstance(s, Tensor) and s.dim() >= 1 and s.size(0) == B for s in state
    ):
        raise CheckpointError(f"{path}: step()'s state must be a list of tensors with the batch ({B}) first")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0].split(". ")[0][:200] if text else type(e).__name__


def _load_module(path: Path, data: bytes) -> torch.jit.ScriptModule:
    try:
        module, _ = torchscript.load(data)
    except Exception as e:  # torch raises RuntimeError, ValueError, ...
        raise CheckpointError(f"{path}: not a loadable TorchScript checkpoint ({_first_line(e)})") from None
    return module


def build_loop(
    path: Path,
    module: torch.jit.ScriptModule,
    incremental: bool,
    ctx: int,
    labels: list[str],
    starts: list[int],
) -> torch.jit.ScriptModule:
    """The scripted batch loop over the checkpoint, started: what the service runs batches on.
    With incremental=False it drives `forward` through StepAdapter (bench.generate's "no cache")."""
    label_order = sorted(range(len(labels)), key=labels.__getitem__)  # next-char ties, by label
    try:
        stepper = module if incremental else torchscript.script(StepAdapter(module, ctx))
        loop = torchscript.script(BatchLoop(stepper, MIN_ROWS, label_order))
        with torch.inference_mode():
            loop.start(starts, ctx if len(starts) > 1 else 1)
    except Exception as e:  # scripting errors (a step of another signature), or failures at start
        raise CheckpointError(
            f"{path}: cannot compile the batch loop over it: {type(e).__name__}: {_first_line(e)}"
        ) from None
    return loop


def _check_bytes(
    path: Path, data: bytes, manifest: dict[str, str] | None, max_content: int
) -> tuple[dict[str, bytes], Integrity]:
    """Every entry, checked (see the module docstring); CheckpointError naming the damaged part.
    The whole file's sha256 is compared with the manifest first, before the archive is parsed; what
    parsing may inflate is capped at `max_content` bytes (the entries' declared sizes)."""
    sha = sha256_hex(data)
    if manifest is not None:
        expected = manifest.get(path.name)
        if expected is None:
            raise CheckpointError(
                f"{path}: not listed in {MANIFEST}; add its line (sha256sum {path.name} >> {MANIFEST}) "
                "or remove the file"
            )
        if expected != sha:
            # name the damaged part where the archive shows it (what it may inflate is capped)
            try:
                report = check_archive(data, max_content)
            except ArchiveError as e:
                raise CheckpointError(f"{path}: does not match its sha256 in {MANIFEST}: {e}") from None
            detail = "digests.json, meta.json with its digest," if report.digests else "meta.json, items.txt,"
            raise CheckpointError(
                f"{path}: does not match its sha256 in {MANIFEST}, though every entry passes its CRC-32"
                f"{' and digest' if report.digests else ''}: {detail} or the archive's records were "
                "rewritten"
            )
    try:
        report = check_archive(data, max_content)
    except ArchiveError as e:
        raise CheckpointError(f"{path}: {e}") from None
    return report.entries, Integrity(crc32=True, digests=report.digests, manifest=manifest is not None)


def read_checkpoint_file(path: Path, max_bytes: int = MAX_CHECKPOINT_BYTES) -> bytes:
    """The file's bytes: a regular file (never a symbolic link or a FIFO) of at most max_bytes."""
    try:
        return read_regular_file(path, max_bytes)
    except ArchiveError as e:
        setting = " (NAMEGEN_MAX_CHECKPOINT_BYTES)" if "limit" in str(e) else ""
        raise CheckpointError(f"{path}: {e}{setting}") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror})") from None


def load_checkpoint(
    path: Path,
    manifest: dict[str, str] | None = None,
    *,
    allow_unverified: bool = False,
    max_bytes: int = MAX_CHECKPOINT_BYTES,
) -> LoadedModel:
    """Load and check one checkpoint (against `manifest`, {file name: sha256}, when given); raise
    CheckpointError naming the file and what is wrong otherwise. A format-1 checkpoint, which
    carries no digests of its entries, is refused unless `allow_unverified`."""
    t0 = time.perf_counter()
    data = read_checkpoint_file(path, max_bytes)
    # entries may inflate (torch deflates its code files): twice the file cap bounds what is read
    entries, integrity = _check_bytes(path, data, manifest, 2 * max_bytes)
    meta = _check_meta(path, entries.get(f"extra/{META_FILE}"))
    if meta["format_version"] >= 2 and not integrity.digests:
        raise CheckpointError(
            f"{path}: format {meta['format_version']} needs {DIGESTS_FILE}, and it is missing"
        )
    if not integrity.digests and not allow_unverified:
        raise CheckpointError(
            f"{path}: format {meta['format_version']} carries no {DIGESTS_FILE}, so its entries cannot be "
            "checked; write it again with `python -m training export`, or set "
            "NAMEGEN_ALLOW_UNVERIFIED=true to load it as it is"
        )
    items_text = entries.get(f"extra/{ITEMS_FILE}", b"").decode("utf-8", "replace")
    items = ItemSet.of_lines(items_text.replace("\r", ""))
    if not items:
        raise CheckpointError(f"{path}: no {ITEMS_FILE} (the training items) in the archive")
    conditions = None
    if "conditions" in meta:
        try:
            conditions = Conditions.parse(meta["conditions"])
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: {META_FILE} field 'conditions' is malformed ({e})") from None
    starts = [0, *sorted(conditions.tokens.values())] if conditions else [0]
    module = _load_module(path, data)
    vocab = list(meta["vocab"])
    labels = [END_LABEL, *vocab[1:]]
    # the checks and the loop's start run once: TorchScript's profiling executor would spend more
    # profiling and optimising their graphs than it saves. The switch is per thread: batches, on
    # torch's inter-op pool, run the loop optimised as before
    with torch.jit.optimized_execution(False):  # type: ignore[attr-defined]  # public, not in __all__
        incremental = _check_module(path, module, meta, starts)
        loop = build_loop(path, module, incremental, int(meta["context_length"]), labels, starts)
    return LoadedModel(
        name=meta["name"],
        path=path,
        meta=meta,
        vocab=vocab,
        stoi={c: i for i, c in enumerate(vocab)},
        alphabet="".join(vocab[1:]),
        labels=labels,
        items=items,
        sha256=sha256_hex(data),
        size_bytes=len(data),
        load_seconds=time.perf_counter() - t0,  # the checks and scripting the batch loop included
        incremental=incremental,
        integrity=integrity,
        conditions=conditions,
        starts=starts,
        module=module,
        loop=loop,
    )
