"""
Scale up: names/s of POST /generate with n = 1000 over HTTP, on 1 core and on all cores, as a
fraction of the hardware limit measured in the same run; and uvicorn workers.

    python -m bench.scale                      # 5 rounds of 4 s per configuration
    python -m bench.scale --rounds 8 --workers 1,2

The hardware limit: the FLOP/s of a large fp32 matmul (2048 x 2048, torch) on 1 thread pinned to
the server's core, and on every core, measured here, now. The model's cost: the FLOPs of one step
of its incremental `step` (every Linear of every level, and the output layer) times the steps a
name takes (its characters and its end), averaged over the names the service returned. The
fraction is names/s x FLOPs per name over the matmul FLOP/s of the same cores.

Two real uvicorn processes serve at once (each idle while the other is measured): one pinned to
core 0 with taskset and NAMEGEN_BATCH_THREADS=1, one on all cores with the default batch threads.
On a shared machine the speed of the cores drifts by tens of per cent within minutes, so the
measurements are interleaved: each round measures, for each configuration in turn, the matmul and
then a lone client's names/s (the 1-core client pinned to another core), and the fraction and the
all-cores speed-up are taken within each round. The table gives the medians over rounds and the
range of the fraction. Then 4 concurrent clients, once per configuration; and, with --workers,
uvicorn with N worker processes: GET /generate?n=1 and POST n=1000 throughput from concurrent
clients, and the resident memory of every worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import Iterator

import httpx
import torch

from bench.http import run_wrk
from checkpoint_format import torchscript
from tests.support import MODELS
from tests.support.server import rss_kb, serve, worker_pids


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
    """FLOPs of one incremental step for one row: 2 x (in x out) for every Linear of every member
    (the embedding tables are lookups, not products, and are left out)."""
    module, _ = torchscript.load(MODELS / f"{model}.pt")
    return float(
        sum(
            2 * p.numel()
            for name, p in module.named_parameters()
            if name.endswith(".weight") and p.dim() == 2 and "wte." not in f".{name}"
        )
    )


VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def cpu_description() -> str:
    """The CPU model, its vector extensions and the kernels torch picked for it: the large matmul
    gains more from wider vector units than the model's small products and elementwise steps do,
    so fractions measured on different kinds of CPU are not comparable."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())  # the first core's
    flags = set(fields.get("flags", "").split())
    # a virtual machine may name only the vendor's line (AMD EPYC): family and model say which
    name, family, number = (fields.get(k, "?") for k in ("model name", "cpu family", "model"))
    model = f"{name} (family {family}, model {number})"
    vector = " ".join(f for f in VECTOR_FLAGS if f in flags) or "none of " + ", ".join(VECTOR_FLAGS)
    return f"{model}; vector extensions: {vector}; torch kernels: {torch.backends.cpu.get_cpu_capability()}"


async def throughput(
    url: str, seconds: float, clients: int, body: dict[str, object] | None
) -> tuple[float, float, float]:
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
    return [rss_kb(p) for p in worker_pids(pid)]


@contextlib.contextmanager
def pinned(cores: set[int]) -> Iterator[None]:
    """This process (the matmul, the Python client) on `cores` for a while."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds per configuration")
    p.add_argument("--duration", type=float, default=4, help="seconds of a lone client per round")
    p.add_argument("--model", default="names")
    p.add_argument("--workers", default="", help="comma-separated worker counts to measure, e.g. 1,2")
    args = p.parse_args()
    all_cores = os.sched_getaffinity(0)
    cores = len(all_cores)
    other = (all_cores - {0}) or {0}  # where the 1-core configuration's client runs
    per_step = step_flops(args.model)
    body = {"model": args.model, "n": 1000, "unique": False}
    print(f"model {args.model}: {per_step / 1e3:,.0f} kFLOP per step per name; {cores} cores")
    print(f"CPU: {cpu_description()}; torch {torch.__version__}")
    labels = ["1 core", f"{cores} cores"]
    threads = {labels[0]: 1, labels[1]: cores}
    affinity = {labels[0]: ({0}, other), labels[1]: (all_cores, all_cores)}  # matmul, client
    env = {"NAMEGEN_LOG_LEVEL": "warning"}
    pin = ["taskset", "-c", "0"]
    one = serve(env={**env, "NAMEGEN_BATCH_THREADS": "1"}, args=["--no-access-log"], prefix=pin)
    every = serve(env=env, args=["--no-access-log"])
    limits: dict[str, list[float]] = {k: [] for k in labels}
    lone: dict[str, list[float]] = {k: [] for k in labels}
    steps: list[float] = []
    busy: dict[str, float] = {}
    with one as srv_one, every as srv_every:
        urls = {labels[0]: srv_one.url, labels[1]: srv_every.url}
        for url in urls.values():
            asyncio.run(throughput(url, 3, 1, body))  # warm-up
        for _ in range(args.rounds):
            for label in labels:
                matmul_cores, client_cores = affinity[label]
                with pinned(matmul_cores):
                    limits[label].append(matmul_flops(threads[label], seconds=1.5))
                with pinned(client_cores):
                    names, _, mean_steps = asyncio.run(throughput(urls[label], args.duration, 1, body))
                lone[label].append(names)
                steps.append(mean_steps)
        for label in labels:
            with pinned(affinity[label][1]):
                busy[label] = asyncio.run(throughput(urls[label], 3 * args.duration, 4, body))[0]
    flops = per_step * statistics.mean(steps)
    print(f"\nPOST /generate n=1000 (unique=false) over HTTP; matmul: 2048x2048 fp32; {args.rounds} "
          f"interleaved rounds, medians\n")  # fmt: skip
    print("| cores | matmul GFLOP/s | lone request names/s | 4 clients names/s | MFLOP per name | "
          "fraction of matmul (lone) | range over rounds | (4 clients) |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for label in labels:
        fractions = [n * flops / lim for n, lim in zip(lone[label], limits[label], strict=True)]
        limit = statistics.median(limits[label])
        print(f"| {label} | {limit / 1e9:.1f} | {statistics.median(lone[label]):,.0f} | {busy[label]:,.0f} | "
              f"{flops / 1e6:.2f} | {statistics.median(fractions):.0%} | "
              f"{min(fractions):.0%}-{max(fractions):.0%} | {busy[label] * flops / limit:.0%} |")  # fmt: skip
    speedups = [b / a for a, b in zip(lone[labels[0]], lone[labels[1]], strict=True)]
    print(
        f"\nall cores / 1 core, lone request: {statistics.median(speedups):.2f}x "
        f"(rounds: {min(speedups):.2f}-{max(speedups):.2f}x)"
    )

    if args.workers:
        # small requests from wrk (a Python client tops out far below the server); large ones
        # from the Python client, which parses every name it gets
        print("\n| workers | GET /generate n=1 req/s (wrk, 32 connections) | p99 ms "
              "| POST n=1000 names/s (4 clients) | RSS per worker MB |")  # fmt: skip
        print("| ---: | ---: | ---: | ---: | --- |")
        for w in [int(x) for x in args.workers.split(",")]:
            with serve(
                # NAMEGEN_WORKERS as the image sets it: the app's defaults follow it (no spinning
                # event loops with several workers)
                env={"NAMEGEN_LOG_LEVEL": "warning", "NAMEGEN_WORKERS": str(w)},
                args=["--no-access-log", "--workers", str(w)],
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
