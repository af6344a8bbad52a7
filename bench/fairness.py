"""
Fairness and bounded cost: light requests alone, then beside worst-case constrained requests on the
same model, against a real uvicorn process (an async httpx client in this separate process,
loopback only).

    python -m bench.fairness                          # 10 s per phase
    python -m bench.fairness --against ../before      # the same, for another checkout, in turn

Light traffic: `--light` clients in a loop, alternating GET /generate?n=1 and GET /next-char on the
`names` model. Heavy traffic: `--heavy` clients in a loop, each request a worst case (`--worst
rejecting`, the default: n = 1000 with a 4-letter prefix, 5 letters at most and novel, which rejects
nearly every sample and so runs every round it may; `--worst long`: 1,000 names of 64 characters at
temperature 5, the most characters a request can ask for; `--worst long-full`: the same as full
names). The table gives, per phase, the light requests' p50/p99 and count, and the heavy requests'
count, time and sequences sampled each (`sampled`), which is what bounds their cost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from pathlib import Path

import httpx

from tests.support.server import REPO, serve

WORSTS = {
    # rejects nearly every sample, so it runs every round it may
    "rejecting": {"n": 1000, "prefix": "emma", "max_length": 5, "novel": True},
    # every row samples 64 characters, and at temperature 5 nearly none ends there: the most
    # characters a request can ask for
    "long": {"n": 1000, "min_length": 64, "max_length": 64, "temperature": 5},
    "long-full": {"n": 1000, "min_length": 64, "max_length": 64, "temperature": 5, "full": True},
}
WORST = WORSTS["rejecting"]
LIGHT = [("/generate", {"n": 1}), ("/next-char", {"prefix": "emm"})]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def light_client(client: httpx.AsyncClient, stop: float, out: list[float], errors: list[int]) -> None:
    i = 0
    while time.monotonic() < stop:
        path, params = LIGHT[i % 2]
        i += 1
        t0 = time.perf_counter()
        r = await client.get(path, params=params)
        out.append(time.perf_counter() - t0)
        if r.status_code != 200:
            errors.append(r.status_code)


async def heavy_client(
    client: httpx.AsyncClient, stop: float, out: list[tuple[float, int, int]], worst: dict[str, object]
) -> None:
    seed = 0
    while time.monotonic() < stop:
        seed += 1
        t0 = time.perf_counter()
        r = await client.post("/generate", json={**worst, "seed": seed})
        data = r.json()
        out.append((time.perf_counter() - t0, data.get("sampled", 0), data.get("rounds", 0)))


async def phase(
    url: str, seconds: float, light: int, heavy: int, worst: dict[str, object] = WORST
) -> dict[str, float]:
    stop = time.monotonic() + seconds
    lat: list[float] = []
    errors: list[int] = []
    costs: list[tuple[float, int, int]] = []
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        tasks = [light_client(client, stop, lat, errors) for _ in range(light)]
        tasks += [heavy_client(client, stop, costs, worst) for _ in range(heavy)]
        await asyncio.gather(*tasks)
    return {
        "light": len(lat),
        "p50": pct(lat, 0.5) * 1000,
        "p99": pct(lat, 0.99) * 1000,
        "errors": len(errors),
        "heavy": len(costs),
        "heavy_s": statistics.median(c[0] for c in costs) if costs else float("nan"),
        "heavy_max_s": max((c[0] for c in costs), default=float("nan")),
        "sampled": statistics.median(c[1] for c in costs) if costs else float("nan"),
        "rounds": statistics.median(c[2] for c in costs) if costs else float("nan"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--duration", type=float, default=10, help="seconds per phase")
    p.add_argument("--light", type=int, default=4, help="light clients")
    p.add_argument("--heavy", type=int, default=2, help="heavy (worst-case) clients")
    p.add_argument("--worst", choices=sorted(WORSTS), default="rejecting", help="the heavy request")
    p.add_argument("--against", type=Path, default=None, help="another checkout, measured in turn")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a setting; repeatable")
    args = p.parse_args()
    env = {"NAMEGEN_LOG_LEVEL": "warning", "NAMEGEN_TORCH_THREADS": "1"}
    env.update(dict(item.split("=", 1) for item in args.env))
    repos = [REPO] if args.against is None else [REPO, args.against.resolve()]
    worst = WORSTS[args.worst]
    print(f"{args.light} light clients (GET /generate?n=1, GET /next-char), {args.heavy} heavy clients "
          f"(POST /generate {worst}), {args.duration:.0f} s per phase {' '.join(args.env)}\n")  # fmt: skip
    print("| checkout | phase | light requests | light p50 ms | light p99 ms | errors | heavy requests "
          "| heavy median s | heavy max s | sampled each | rounds each |")  # fmt: skip
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with contextlib.ExitStack() as stack:
        servers = {
            repo: stack.enter_context(serve(env=env, args=["--no-access-log"], repo=repo)) for repo in repos
        }
        for repo, srv in servers.items():
            asyncio.run(phase(srv.url, 2, args.light, 0))  # warm-up
            name = "this" if repo == REPO else repo.name
            for label, heavy in (("alone", 0), ("beside heavy", args.heavy)):
                r = asyncio.run(phase(srv.url, args.duration, args.light, heavy, worst))
                print(f"| {name} | {label} | {r['light']:,} | {r['p50']:.1f} | {r['p99']:.1f} | "
                      f"{r['errors']} | {r['heavy']} | {r['heavy_s']:.2f} | {r['heavy_max_s']:.2f} | "
                      f"{r['sampled']:,.0f} | {r['rounds']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
