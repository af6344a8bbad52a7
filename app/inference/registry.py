"""
The model registry: every `*.pt` checkpoint in a folder, each loaded and checked
(app/inference/checkpoint.py) against the folder's manifest, before the service accepts a request;
and the safe filter, which knows every loaded model's real names.

Nothing here imports FastAPI or training/.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from app.config import MAX_CHECKPOINT_BYTES
from app.inference.checkpoint import CheckpointError, load_checkpoint
from app.inference.items import ItemSet
from app.inference.loaded import LoadedModel
from app.inference.safety import SafetyFilter
from checkpoint_format import MANIFEST, ArchiveError, read_manifest, read_manifest_file

logger = logging.getLogger("namegen.registry")


@dataclass
class Registry:
    models: dict[str, LoadedModel]
    default: str
    skipped: dict[str, str] = field(default_factory=dict)  # file name -> why, when skipping bad models
    manifest: bool = False  # whether the folder has a SHA256SUMS that every model was checked against
    # what /generate refuses unless a request says safe=false; every loaded model's items are real
    # names, which it never refuses
    safety: SafetyFilter = field(default_factory=lambda: SafetyFilter.from_packages(()), repr=False)

    def names(self) -> list[str]:
        return sorted(self.models)


def list_checkpoints(models_dir: Path) -> list[Path]:
    """The folder's *.pt entries (not hidden ones), sorted; CheckpointError when there is no such
    folder or no checkpoint in it. Entries are listed, not followed: each is read as a regular
    file later (read_checkpoint_file), so a symbolic link or FIFO named *.pt is refused there."""
    if not models_dir.is_dir():
        raise CheckpointError(f"{models_dir}: models folder does not exist")
    paths = sorted(
        models_dir / e.name
        for e in os.scandir(models_dir)
        if e.name.endswith(".pt") and not e.name.startswith(".")
    )
    if not paths:
        raise CheckpointError(f"{models_dir}: no checkpoints (*.pt) in the models folder")
    return paths


def find_manifest(
    models_dir: Path, manifest_path: Path | None, allow_unverified: bool
) -> dict[str, str] | None:
    """The expected sha256 of each file: from `manifest_path` when given (it must exist), else from
    the folder's SHA256SUMS. Without either, CheckpointError, unless `allow_unverified`: then None,
    and a warning that says what is not checked."""
    try:
        if manifest_path is not None:
            manifest = read_manifest_file(manifest_path)
            if manifest is None:
                raise CheckpointError(f"{manifest_path}: the manifest (NAMEGEN_MANIFEST) does not exist")
            return manifest
        manifest = read_manifest(models_dir)
    except ArchiveError as e:
        raise CheckpointError(str(e)) from None
    if manifest is not None:
        return manifest
    if not allow_unverified:
        raise CheckpointError(
            f"{models_dir}: no {MANIFEST} to check the checkpoints against; keep one beside them "
            "(python -m training writes it), point NAMEGEN_MANIFEST at one, or set "
            "NAMEGEN_ALLOW_UNVERIFIED=true to load them checked against their own CRC-32s and digests only"
        )
    logger.warning(
        "UNVERIFIED: no %s in %s and NAMEGEN_ALLOW_UNVERIFIED is set: checkpoints are checked against "
        "their own CRC-32s and digests only, and format-1 files (no digests) are loaded as they are",
        MANIFEST,
        models_dir,
    )
    return None


def load_registry(
    models_dir: Path,
    default: str | None = None,
    skip_bad: bool = False,
    *,
    manifest_path: Path | None = None,
    allow_unverified: bool = False,
    max_bytes: int = MAX_CHECKPOINT_BYTES,
    threads: int = 1,
    prepare: Callable[[LoadedModel], None] | None = None,
) -> Registry:
    """Load every *.pt in `models_dir`, each checked against the manifest (find_manifest), up to
    `threads` files at once. Bad checkpoints raise CheckpointError (the first bad one in file
    order), or with `skip_bad` are logged and left out. Raises too when nothing loads or `default`
    is absent. `prepare` runs on each model that loads, in its loading thread (the service warms
    its batch loop: batching.warm_up)."""
    paths = list_checkpoints(models_dir)
    manifest = find_manifest(models_dir, manifest_path, allow_unverified)
    if manifest is not None:
        absent = sorted(set(manifest) - {p.name for p in paths})
        if absent:
            logger.warning("%s lists files that are not in %s: %s", MANIFEST, models_dir, ", ".join(absent))
    models: dict[str, LoadedModel] = {}
    skipped: dict[str, str] = {}
    # one set of training items for every model with the same items (the US given-name models all
    # hold every name of every year): the copies are freed
    item_sets: dict[ItemSet, ItemSet] = {}

    def load(path: Path) -> LoadedModel | CheckpointError:
        try:
            model = load_checkpoint(path, manifest, allow_unverified=allow_unverified, max_bytes=max_bytes)
        except CheckpointError as e:
            return e
        if prepare is not None:
            prepare(model)
        return model

    # the checks and the loop's start run in TorchScript without the GIL, so files load side by
    # side on several cores; what each yields is then taken in file order, as one at a time would
    with ThreadPoolExecutor(max(1, min(threads, len(paths))), thread_name_prefix="load") as pool:
        loaded = list(pool.map(load, paths))
    for path, model in zip(paths, loaded, strict=True):
        if isinstance(model, CheckpointError):
            if not skip_bad:
                raise model
            logger.warning("skipping checkpoint: %s", model)
            skipped[path.name] = str(model).removeprefix(f"{path}: ")  # the file's name only, no path
            continue
        items = item_sets.setdefault(model.items, model.items)
        if items is not model.items:
            model = replace(model, items=items)
        models[model.name] = model
        logger.info(
            "loaded model %s from %s (%d bytes, %d parameters, %s, %s, %.0f ms)",
            model.name,
            path,
            model.size_bytes,
            model.meta["parameters"],
            "incremental" if model.incremental else "forward-only",
            "sha256 in " + MANIFEST if model.integrity.manifest else "no manifest",
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
    safety = SafetyFilter.from_packages([m.items for m in models.values()])
    return Registry(models, default, skipped, manifest is not None, safety)
