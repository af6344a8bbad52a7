"""
Start-up: how long a real uvicorn process takes from its start to a ready /readyz with every shipped
model (imports included), what its log says loading took, and its resident memory once ready; with
--extra-model, the same with one more checkpoint beside the shipped ones, and what it adds.

    python -m bench.startup                                   # 5 starts
    python -m bench.startup --extra-model /tmp/extra/names-extra.pt

Configurations take turns start by start, so a drift of the machine's speed touches them alike.
The extra model is copied with the shipped ones into a temporary folder (with their SHA256SUMS
lines and its own), which the server is pointed at.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.server import REPO, rss_kb, serve

LOADED = re.compile(r"ready: .* loaded in (\d+) ms")


@contextlib.contextmanager
def models_with(extra: Path) -> Iterator[Path]:
    """A temporary models folder: the shipped checkpoints and `extra`, each listed in SHA256SUMS."""
    with tempfile.TemporaryDirectory(prefix="namegen-startup-") as tmp:
        folder = Path(tmp)
        lines = (REPO / "models" / "SHA256SUMS").read_text().splitlines()
        for line in lines:
            name = line.split()[1]
            shutil.copyfile(REPO / "models" / name, folder / name)
        shutil.copyfile(extra, folder / extra.name)
        digest = hashlib.sha256(extra.read_bytes()).hexdigest()
        (folder / "SHA256SUMS").write_text("\n".join([*lines, f"{digest}  {extra.name}"]) + "\n")
        yield folder


def start_once(models_dir: Path | None) -> tuple[float, int, int]:
    """(seconds from process start to a ready /readyz, the log's load time in ms, RSS in kB)."""
    env = {"NAMEGEN_LOG_LEVEL": "info"}
    if models_dir is not None:
        env["NAMEGEN_MODELS_DIR"] = str(models_dir)
    t0 = time.monotonic()
    with serve(env=env, args=["--no-access-log"], ready_timeout=120, poll_s=0.005) as srv:
        ready = time.monotonic() - t0
        found = LOADED.search(srv.log())
        if found is None:
            raise RuntimeError(f"no 'ready: ... loaded in' line in the log:\n{srv.log()}")
        return ready, int(found.group(1)), rss_kb(srv.proc.pid)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--starts", type=int, default=5, help="starts per configuration")
    p.add_argument("--extra-model", type=Path, default=None, help="a checkpoint to load beside the shipped")
    args = p.parse_args()
    with contextlib.ExitStack() as stack:
        configs: dict[str, Path | None] = {"shipped": None}
        if args.extra_model is not None:
            configs[f"shipped + {args.extra_model.name}"] = stack.enter_context(models_with(args.extra_model))
        runs: dict[str, list[tuple[float, int, int]]] = {name: [] for name in configs}
        for _ in range(args.starts):
            for name, folder in configs.items():
                runs[name].append(start_once(folder))
    print(f"{args.starts} starts each, in turn; medians (range)\n")
    print("| models | ready from process start, s | loading (log), ms | RSS at ready, MB |")
    print("| --- | ---: | ---: | ---: |")
    medians = {}
    for name, got in runs.items():
        ready, loaded, rss = (sorted(col) for col in zip(*got, strict=True))
        mb = [kb / 1024 for kb in rss]
        medians[name] = statistics.median(ready), statistics.median(loaded), statistics.median(mb)
        s, ms, m = medians[name]
        print(f"| {name} | {s:.2f} ({ready[0]:.2f}-{ready[-1]:.2f}) | {ms:.0f} ({loaded[0]}-{loaded[-1]}) "
              f"| {m:.0f} ({mb[0]:.0f}-{mb[-1]:.0f}) |")  # fmt: skip
    if len(medians) == 2:
        (a, b) = medians.values()
        print(f"\none more model adds {b[0] - a[0]:+.2f} s to ready, {b[1] - a[1]:+.0f} ms to loading, "
              f"{b[2] - a[2]:+.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
