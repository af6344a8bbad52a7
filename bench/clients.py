"""
Slow clients (slowloris): many loopback connections trickling a request's headers a byte at a
time, against a real server with the header deadline; how long they are held, and what /healthz
and /generate latency is meanwhile.

    python -m bench.clients                          # 500 connections, a byte every 2 s
    python -m bench.clients --connections 800 --header-timeout 5

Reports when the server closed the slow connections (with a 408), and p50/p99/max latency of
sequential GET /healthz and GET /generate?n=5 requests made while they were open, beside the same
requests with no slow clients.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx

from bench.fairness import pct
from tests.support.server import serve
from tests.support.slow import trickle


async def probe(url: str, seconds: float) -> list[float]:
    lat = []
    stop = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while time.monotonic() < stop:
            for path, params in (("/healthz", {}), ("/generate", {"n": 5})):
                t0 = time.perf_counter()
                r = await client.get(path, params=params)
                lat.append(time.perf_counter() - t0)
                assert r.status_code == 200
            await asyncio.sleep(0.02)
    return lat


async def run(url: str, connections: int, interval: float, timeout: float) -> None:
    host, port = url.removeprefix("http://").split(":")
    quiet = await probe(url, 3)
    started = time.monotonic()
    slow = [asyncio.create_task(trickle(host, int(port), interval, started)) for _ in range(connections)]
    await asyncio.sleep(0.2)
    during = await probe(url, max(1.0, timeout - 0.5))
    ends = await asyncio.gather(*slow)
    closed = sorted(t for t, _ in ends)
    got_408 = sum(a.startswith(b"HTTP/1.1 408") for _, a in ends)
    print(f"{connections} slow connections, a byte every {interval:g} s, header deadline {timeout:g} s\n")
    print("| phase | requests | p50 ms | p99 ms | max ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, lat in (("no slow clients", quiet), (f"{connections} slow clients open", during)):
        print(f"| {label} | {len(lat)} | {pct(lat, 0.5) * 1000:.1f} | {pct(lat, 0.99) * 1000:.1f} | "
              f"{max(lat) * 1000:.1f} |")  # fmt: skip
    print(f"\nslow connections closed by the server after {closed[0]:.2f} to {closed[-1]:.2f} s; "
          f"{got_408} of {connections} answered 408 Request Timeout")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--connections", type=int, default=500, help="slow connections (the fd limit caps it)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between bytes")
    p.add_argument("--header-timeout", type=float, default=10.0, help="NAMEGEN_HEADER_TIMEOUT_S")
    args = p.parse_args()
    env = {"NAMEGEN_HEADER_TIMEOUT_S": str(args.header_timeout), "NAMEGEN_LOG_LEVEL": "warning"}
    with serve(env=env, args=["--no-access-log"]) as srv:
        asyncio.run(run(srv.url, args.connections, args.interval, args.header_timeout))


if __name__ == "__main__":
    main()
