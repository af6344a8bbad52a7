"""
Check a models folder the way the service does at start-up, without starting it.

    namegen-verify [FOLDER ...]        # default: NAMEGEN_MODELS_DIR, else the repository's models/
    python -m app.inference.verify models/

Every `*.pt` is read and checked as the registry loads it (zip structure and CRC-32s, digests.json,
SHA256SUMS when the folder has one, the checkpoint contract, the batch loop compiled over it). One
line per file; a file listed in SHA256SUMS but absent counts as damage too. Exits 0 when every
folder is intact, 1 otherwise, 2 for a folder that does not exist. Needs nothing from training/,
so it runs in the service image (the image build runs it).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import torch

from app.config import REPO_MODELS
from app.inference.registry import CheckpointError, load_checkpoint
from checkpoint_format import MANIFEST, ArchiveError, read_manifest


def verify_folder(folder: Path) -> int:
    """Print one line per checkpoint of `folder`; return how many are damaged or missing."""
    try:
        manifest = read_manifest(folder)
    except ArchiveError as e:
        print(f"FAILED {e}")
        return 1
    paths = sorted(p for p in folder.glob("*.pt") if not p.name.startswith("."))
    print(
        f"{folder}: {len(paths)} checkpoints, "
        + (
            f"{MANIFEST} with {len(manifest)} files"
            if manifest is not None
            else f"no {MANIFEST} (entries are checked against their CRC-32s and digests only)"
        )
    )
    bad = 0
    for path in paths:
        try:
            model = load_checkpoint(path, manifest)
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
        print(f"FAILED {folder / name}: listed in {MANIFEST} but missing")
        bad += 1
    return bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="namegen-verify", description=__doc__.strip().splitlines()[0])
    parser.add_argument(
        "folders", nargs="*", type=Path, metavar="FOLDER",
        help="models folders (default: NAMEGEN_MODELS_DIR, else the repository's models/)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    folders = args.folders or [Path(os.environ.get("NAMEGEN_MODELS_DIR", REPO_MODELS))]
    logging.getLogger("namegen").setLevel(logging.ERROR)
    torch.set_num_threads(1)  # as the service runs; more threads only wait on each other here
    bad = 0
    for folder in folders:
        if not folder.is_dir():
            print(f"FAILED {folder}: not a folder", file=sys.stderr)
            return 2
        bad += verify_folder(folder)
    print("all intact" if not bad else f"{bad} damaged or missing")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
