"""
Check a models folder the way the service does at start-up, without starting it.

    namegen-verify [FOLDER ...]        # default: NAMEGEN_MODELS_DIR, else the repository's models/
    python -m app.inference.verify models/

Every `*.pt` is read and checked as the registry loads it (a regular file within the size cap, its
sha256 against the manifest, zip structure and CRC-32s, digests.json, the checkpoint contract, the
batch loop compiled over it). The manifest is the folder's SHA256SUMS, or `--manifest FILE`; a
folder without one, or a format-1 file, fails unless `--allow-unverified`, as at start-up. One
line per file; a file listed in the manifest but absent counts as damage too. Exits 0 when every
folder is intact, 1 otherwise, 2 for a folder that does not exist. Needs nothing from training/,
so it runs in the service image (the image build runs it).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from app.config import Settings
from app.inference.checkpoint import CheckpointError, load_checkpoint
from app.inference.registry import find_manifest, list_checkpoints
from checkpoint_format import MANIFEST


def verify_folder(folder: Path, manifest_path: Path | None = None, allow_unverified: bool = False) -> int:
    """Print one line per checkpoint of `folder`; return how many are damaged or missing."""
    try:
        paths = list_checkpoints(folder)
        manifest = find_manifest(folder, manifest_path, allow_unverified)
    except CheckpointError as e:
        print(f"FAILED {e}")
        return 1
    source = str(manifest_path) if manifest_path else MANIFEST
    print(
        f"{folder}: {len(paths)} checkpoints, "
        + (
            f"{source} with {len(manifest)} files"
            if manifest is not None
            else f"UNVERIFIED: no {MANIFEST} (entries are checked against their CRC-32s and digests only)"
        )
    )
    bad = 0
    for path in paths:
        try:
            model = load_checkpoint(path, manifest, allow_unverified=allow_unverified)
        except CheckpointError as e:
            print(f"FAILED {e}")
            bad += 1
            continue
        checks = [
            "CRC-32",
            "digests" if model.integrity.digests else "",
            MANIFEST if model.integrity.manifest else "",
        ]
        print(f"ok     {path.name}  sha256 {model.sha256}  ({', '.join(c for c in checks if c)})")
    for name in sorted(set(manifest or {}) - {p.name for p in paths}):
        print(f"FAILED {folder / name}: listed in {source} but missing")
        bad += 1
    return bad


def main(argv: list[str] | None = None) -> int:
    settings = Settings()
    parser = argparse.ArgumentParser(prog="namegen-verify", description=__doc__.strip().splitlines()[0])
    parser.add_argument(
        "folders", nargs="*", type=Path, metavar="FOLDER",
        help="models folders (default: NAMEGEN_MODELS_DIR, else the repository's models/)",
    )  # fmt: skip
    parser.add_argument(
        "--manifest", type=Path, default=settings.manifest, metavar="FILE",
        help="expected sha256 digests (sha256sum's format) for every folder; default: NAMEGEN_MANIFEST, "
        "else each folder's SHA256SUMS",
    )  # fmt: skip
    parser.add_argument(
        "--allow-unverified", action="store_true", default=settings.allow_unverified,
        help="accept a folder without a manifest and format-1 files, as NAMEGEN_ALLOW_UNVERIFIED does",
    )  # fmt: skip
    args = parser.parse_args(argv)
    folders = args.folders or [settings.models_dir]
    logging.getLogger("namegen").setLevel(logging.ERROR)
    torch.set_num_threads(1)  # as the service runs; more threads only wait on each other here
    bad = 0
    for folder in folders:
        if not folder.is_dir():
            print(f"FAILED {folder}: not a folder", file=sys.stderr)
            return 2
        bad += verify_folder(folder, args.manifest, args.allow_unverified)
    print("all intact" if not bad else f"{bad} damaged or missing")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
