"""
Peak memory under the worst-case mix: every model busy with the largest work a request may ask for,
against a real uvicorn process. Its resident memory (VmRSS) is sampled every 20 ms.

    python -m bench.memory                      # 20 s of the mix
    python -m bench.memory --against ../before  # another checkout, in turn

The mix, for every loaded model, from `--clients` clients each: POST /generate with n = max_n and
constraints that reject nearly every sample (a round of up to NAMEGEN_MAX_ROUND_ROWS rows, round
after round), POST /score with max_score_names names, and GET /generate with n = max_n. Batches
hold at most NAMEGEN_MAX_BATCH_ROWS rows, so this is the most memory requests can make the service
use; the table gives RSS at rest, its peak, and the requests served.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from pathlib import Path

import httpx

from tests.support.server import REPO, rss_kb, serve


async def mix(url: str, seconds: float, clients: int, pid: int) -> tuple[int, int, int]:
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        info = (await client.get("/models")).json()
        limits = info["limits"]
        stop = time.monotonic() + seconds
        served = [0]

        async def loop(method: str, path: str, body: dict[str, object]) -> None:
            seed = 0
            while time.monotonic() < stop:
                seed += 1
                if method == "POST":
                    r = await client.post(path, json={**body, "seed": seed} if path == "/generate" else body)
                else:
                    r = await client.get(path, params={**body, "seed": seed})
                assert r.status_code == 200, r.text[:300]
                served[0] += 1

        peak = [rss_kb(pid)]

        async def sample() -> None:
            while time.monotonic() < stop:
                peak[0] = max(peak[0], rss_kb(pid))
                await asyncio.sleep(0.02)

        work = [sample()]
        for m in info["data"]:
            name, letters = m["name"], m["alphabet"]
            worst = {
                "model": name,
                "n": limits["max_n"],
                "prefix": letters[:4],
                "max_length": 5,
                "novel": True,
            }
            names = [letters[i % len(letters)] * (1 + i % 15) for i in range(limits["max_score_names"])]
            for _ in range(clients):
                work += [
                    loop("POST", "/generate", worst),
                    loop("POST", "/score", {"model": name, "names": names}),
                    loop("GET", "/generate", {"model": name, "n": limits["max_n"], "unique": "false"}),
                ]
        rest = rss_kb(pid)
        await asyncio.gather(*work)
        return rest, peak[0], served[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--duration", type=float, default=20, help="seconds of the mix")
    p.add_argument("--clients", type=int, default=2, help="clients per kind of request per model")
    p.add_argument("--against", type=Path, default=None, help="another checkout, measured in turn")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a setting; repeatable")
    args = p.parse_args()
    env = {"NAMEGEN_LOG_LEVEL": "warning"}
    env.update(dict(item.split("=", 1) for item in args.env))
    repos = [REPO] if args.against is None else [REPO, args.against.resolve()]
    print(f"worst-case mix for {args.duration:.0f} s, {args.clients} clients per kind per model "
          f"{' '.join(args.env)}\n")  # fmt: skip
    print("| checkout | RSS at rest MB | peak RSS MB | requests served |")
    print("| --- | ---: | ---: | ---: |")
    with contextlib.ExitStack() as stack:
        for repo in repos:
            srv = stack.enter_context(serve(env=env, args=["--no-access-log"], repo=repo))
            rest, peak, served = asyncio.run(mix(srv.url, args.duration, args.clients, srv.proc.pid))
            name = "this" if repo == REPO else repo.name
            print(f"| {name} | {rest / 1024:.0f} | {peak / 1024:.0f} | {served:,} |")


if __name__ == "__main__":
    main()
