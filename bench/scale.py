"""
Scale up: names/s of POST /generate with n = 1000 over HTTP, on 1 core and on all cores, as a
fraction of the hardware limit measured in the same run; and uvicorn workers.

    python -m bench.scale                      # 15 s per configuration
    python -m bench.scale --duration 30 --workers 1,2

The hardware limit: the FLOP/s of a large fp32 matmul (2048 x 2048, torch) on 1 thread and on every
core, measured here, now. The model's cost: the FLOPs of one step of its incremental `step` (every
Linear of every level, and the output layer) times the steps a name takes (its characters and its
end), averaged over the names the service returned. The fraction is names/s x FLOPs per name over
the matmul FLOP/s of the same cores.

Configurations, each a real uvicorn process serving alone: 1 core (the process pinned to one CPU
with taskset, NAMEGEN_BATCH_THREADS=1) and all cores (no pinning, the default batch threads); and,
with --workers, uvicorn with N worker processes: GET /generate?n=1 and POST n=1000 throughput from
concurrent clients, and the resident memory of every worker.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import time
from pathlib import Path

import httpx
import torch

from bench.http import run_wrk
from bench.server import serve
from bench.soak import rss_kb

MODELS = Path(__file__).resolve().parents[1] / "models"


def matmul_flops(threads: int, size: int = 2048, seconds: float = 3.0) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b  # warm-up
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        done += 1
    return 2 * size**3 * done / (time.perf_counter() - t0)


def step_flops(model: str) -> float:
    """FLOPs of one incremental step for one row: 2 x (in x out) for every Linear (the embedding
    table is a lookup, not a product, and is left out)."""
    module = torch.jit.load(str(MODELS / f"{model}.pt"))
    return float(
        sum(
            2 * p.numel()
            for name, p in module.named_parameters()
            if name.endswith(".weight") and p.dim() == 2 and not name.startswith("wte.")
        )
    )


async def throughput(
    url: str, seconds: float, clients: int, body: dict[str, object] | None
) -> tuple[float, float]:
    """Names/s and requests/s from `clients` concurrent clients for `seconds`; and the mean
    steps per name (characters + end) of what came back."""
    stop = time.monotonic() + seconds
    names: list[str] = []
    requests = 0

    async def loop(client: httpx.AsyncClient) -> None:
        nonlocal requests
        seed = 0
        while time.monotonic() < stop:
            seed += 1
            if body is None:
                r = await client.get("/generate", params={"n": 1, "seed": seed})
            else:
                r = await client.post("/generate", json={**body, "seed": seed})
            r.raise_for_status()
            names.extend(r.json()["names"])
            requests += 1

    t0 = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await asyncio.gather(*(loop(client) for _ in range(clients)))
    elapsed = time.monotonic() - t0
    steps = statistics.mean(len(n) + 1 for n in names)
    return len(names) / elapsed, requests / elapsed, steps


def worker_rss(pid: int) -> list[int]:
    """RSS (kB) of a uvicorn process's workers, or of the process itself when it has none."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    cmdlines = {c: Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace") for c in children}
    workers = [  # not multiprocessing's resource tracker, which uvicorn's supervisor also starts
        int(c) for c, cmd in cmdlines.items() if "python" in cmd and "resource_tracker" not in cmd
    ]
    return [rss_kb(p) for p in workers] or [rss_kb(pid)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--duration", type=float, default=15, help="seconds per configuration")
    p.add_argument("--model", default="names")
    p.add_argument("--workers", default="", help="comma-separated worker counts to measure, e.g. 1,2")
    args = p.parse_args()
    cores = len(os.sched_getaffinity(0))
    per_step = step_flops(args.model)
    body = {"model": args.model, "n": 1000, "unique": False}
    print(f"model {args.model}: {per_step / 1e3:,.0f} kFLOP per step per name; {cores} cores")
    rows = []
    for label, threads, prefix, env in [
        ("1 core", 1, ["taskset", "-c", "0"], {"NAMEGEN_BATCH_THREADS": "1"}),
        (f"{cores} cores", cores, [], {}),
    ]:
        limit = matmul_flops(threads)
        with serve(
            env={"NAMEGEN_LOG_LEVEL": "warning", **env}, args=["--no-access-log"], prefix=prefix
        ) as srv:
            asyncio.run(throughput(srv.url, 3, 1, body))  # warm-up
            lone_names, _, steps = asyncio.run(throughput(srv.url, args.duration, 1, body))
            busy_names, _, _ = asyncio.run(throughput(srv.url, args.duration, 4, body))
        flops = per_step * steps
        rows.append((label, limit, lone_names, busy_names, flops))
    print("\nPOST /generate n=1000 (unique=false) over HTTP; matmul: 2048x2048 fp32, same run\n")
    print("| cores | matmul GFLOP/s | lone request names/s | 4 clients names/s | MFLOP per name | "
          "fraction of matmul (lone) | (4 clients) |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, limit, lone, busy, flops in rows:
        print(f"| {label} | {limit / 1e9:.1f} | {lone:,.0f} | {busy:,.0f} | {flops / 1e6:.2f} | "
              f"{lone * flops / limit:.0%} | {busy * flops / limit:.0%} |")  # fmt: skip
    print(f"\nall cores / 1 core, lone request: {rows[1][2] / rows[0][2]:.2f}x")

    if args.workers:
        # small requests from wrk (a Python client tops out far below the server); large ones
        # from the Python client, which parses every name it gets
        print("\n| workers | GET /generate n=1 req/s (wrk, 32 connections) | p99 ms "
              "| POST n=1000 names/s (4 clients) | RSS per worker MB |")  # fmt: skip
        print("| ---: | ---: | ---: | ---: | --- |")
        for w in [int(x) for x in args.workers.split(",")]:
            with serve(
                env={"NAMEGEN_LOG_LEVEL": "warning"}, args=["--no-access-log", "--workers", str(w)]
            ) as srv:
                asyncio.run(throughput(srv.url, 3, 8, None))  # warm-up, and every worker started
                small = f"{srv.url}/generate?n=1"
                rps, _, p99, _, _ = run_wrk(small, "GET", None, int(args.duration), 32, 1)
                names, _, _ = asyncio.run(throughput(srv.url, args.duration, 4, body))
                rss = worker_rss(srv.proc.pid)
            mb = ", ".join(f"{r / 1024:.0f}" for r in rss)
            print(f"| {w} | {rps:,.0f} | {p99:.1f} | {names:,.0f} | {mb} |")


if __name__ == "__main__":
    main()
