"""
Soak: mixed traffic against a real uvicorn process for a fixed time, from an async httpx client in
this (separate) process, loopback only. Reports per-endpoint requests, errors, p50 and p99, and the
server's resident memory after warm-up and at the end. Exits 1 on any error, or if memory grew by
more than --max-growth.

    python -m bench.soak                          # 60 s, 64 connections
    python -m bench.soak --duration 10            # the short version CI runs
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.server import rss_kb, serve

# (label, method, path, query or JSON body); picked at random, each equally often
TRAFFIC: list[tuple[str, str, str, dict[str, Any]]] = [
    ("GET /generate n=1", "GET", "/generate", {"n": 1}),
    ("GET /generate n=10 prefix", "GET", "/generate", {"n": 10, "prefix": "ma", "temperature": 0.8}),
    ("POST /generate n=50 novel", "POST", "/generate", {"n": 50, "novel": True, "top_p": 0.9}),
    ("POST /generate n=200 lengths", "POST", "/generate", {"n": 200, "min_length": 5, "max_length": 8}),
    ("GET /next-char", "GET", "/next-char", {"prefix": "jo"}),
    ("POST /next-char", "POST", "/next-char", {"prefix": "", "model": "names-female", "top_k": 5}),
    ("POST /score", "POST", "/score", {"names": ["emma", "xqzv", "Kaylani", "schmidt"]}),
    ("GET /models", "GET", "/models", {}),
    ("GET /generate bad", "GET", "/generate", {"n": 0}),  # a 422 is the right answer here
]
EXPECTED = {"GET /generate bad": 422}


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)


async def worker(
    client: httpx.AsyncClient, stop_at: float, rng: random.Random, stats: dict[str, Stats]
) -> None:
    while time.monotonic() < stop_at:
        label, method, path, payload = rng.choice(TRAFFIC)
        t0 = time.perf_counter()
        try:
            if method == "GET":
                resp = await client.get(path, params=payload)
            else:
                resp = await client.post(path, json=payload)
            ok = resp.status_code == EXPECTED.get(label, 200)
            detail = f"{resp.status_code} {resp.text[:200]}"
        except httpx.HTTPError as e:
            ok, detail = False, f"{type(e).__name__}: {e}"
        s = stats[label]
        s.latencies.append(time.perf_counter() - t0)
        if not ok:
            s.errors += 1
            if len(s.error_samples) < 3:
                s.error_samples.append(detail)


async def drive(url: str, seconds: float, connections: int, seed: int) -> dict[str, Stats]:
    """`connections` clients of one connection each: one shared httpx pool of 64 connections
    managed only about 120 requests/s here, a client-side limit, not the server's."""
    stats: dict[str, Stats] = defaultdict(Stats)
    stop_at = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [httpx.AsyncClient(base_url=url, timeout=30, limits=limits) for _ in range(connections)]
    try:
        await asyncio.gather(
            *(worker(c, stop_at, random.Random(seed * 1000 + i), stats) for i, c in enumerate(clients))
        )
    finally:
        for c in clients:
            await c.aclose()
    return stats


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--duration", type=float, default=60, help="seconds of measured traffic")
    p.add_argument("--warmup", type=float, default=5, help="seconds of traffic before the first RSS reading")
    p.add_argument("--connections", type=int, default=64, help="concurrent connections")
    p.add_argument("--max-growth", type=float, default=0.10, help="allowed RSS growth after warm-up")
    p.add_argument("--seed", type=int, default=0, help="seed of the traffic mix")
    args = p.parse_args()

    with serve(env={"NAMEGEN_LOG_LEVEL": "warning"}, args=["--no-access-log"]) as srv:
        warm = asyncio.run(drive(srv.url, args.warmup, args.connections, args.seed))
        rss_start = rss_kb(srv.proc.pid)
        t0 = time.monotonic()
        stats = asyncio.run(drive(srv.url, args.duration, args.connections, args.seed + 1))
        elapsed = time.monotonic() - t0
        rss_end = rss_kb(srv.proc.pid)

    total = sum(len(s.latencies) for s in stats.values())
    errors = sum(s.errors for s in stats.values()) + sum(s.errors for s in warm.values())
    growth = rss_end / rss_start - 1
    print(f"{args.duration:.0f} s after {args.warmup:.0f} s warm-up, {args.connections} connections: "
          f"{total:,} requests, {total / elapsed:,.0f}/s, {errors} errors\n")  # fmt: skip
    print(f"| {'endpoint':<30} | {'requests':>8} | {'errors':>6} | {'p50 ms':>7} | {'p99 ms':>7} |")
    print(f"|{'-' * 32}|{'-' * 10}|{'-' * 8}|{'-' * 9}|{'-' * 9}|")
    for label, *_ in TRAFFIC:
        s = stats[label]
        if not s.latencies:
            continue
        print(f"| {label:<30} | {len(s.latencies):>8,} | {s.errors:>6} | {pct(s.latencies, 0.5):>7.1f} | "
              f"{pct(s.latencies, 0.99):>7.1f} |")  # fmt: skip
    print(f"\nserver RSS: {rss_start / 1024:.0f} MB after warm-up, {rss_end / 1024:.0f} MB at the end "
          f"({growth:+.1%}; allowed {args.max_growth:+.0%})")  # fmt: skip
    for label, s in {**warm, **stats}.items():
        for sample in s.error_samples:
            print(f"error on {label}: {sample}", file=sys.stderr)
    mean = statistics.mean(x for s in stats.values() for x in s.latencies) * 1000 if total else 0.0
    print(f"mean latency {mean:.1f} ms")
    return 1 if errors or growth > args.max_growth else 0


if __name__ == "__main__":
    sys.exit(main())
