"""
HTTP load benchmark: wrk (its own process, loopback only, fixed duration and connections, stops by
itself) against a real uvicorn process serving namegen. GET /healthz is the ceiling: what this
server, machine and load generator manage with no model work at all. Every other endpoint is
reported as a ratio to it, and beside it what a request costs the server in CPU time: its event
loop (the main thread of each uvicorn process that serves) and every thread it has (with the batch
threads that run the model), read from /proc before and after each run. On a shared machine whose
cores run faster or slower from one minute to the next, the throughput moves with them; the CPU
time per request moves less, and says where a change in a ratio comes from.

    python -m bench.http                         # 10 s per endpoint, 32 connections
    python -m bench.http --duration 5 --connections 64 --workers 1
    python -m bench.http --rounds 5 --duration 5    # medians of 5 interleaved rounds
    python -m bench.http --rounds 5 --duration 5 --against ../old   # A/B against another checkout

Needs wrk (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from statistics import median

from tests.support.server import REPO, serve, worker_pids

ENDPOINTS: list[tuple[str, str, str, dict[str, object] | None]] = [
    # label, method, path, JSON body
    ("GET /healthz", "GET", "/healthz", None),
    ("GET /next-char", "GET", "/next-char?prefix=emm", None),  # one prefix: answered from the cache
    # a random three-letter prefix per request ({prefix}: 17,576 of them), most computed
    ("GET /next-char varied", "GET", "/next-char?prefix={prefix}", None),
    ("GET /generate n=1", "GET", "/generate?n=1", None),
    # a fresh random seed per request ({seed}): what a client that brings seeds costs, sampled as
    # it comes; one fixed seed would give a batch of identical rows, all ending at the same step
    ("GET /generate n=1 seeded", "GET", "/generate?n=1&seed={seed}", None),
    ("POST /generate n=100", "POST", "/generate", {"n": 100}),
]


@dataclass
class Result:
    label: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors + non-2xx/3xx responses + timeouts
    loop_us: float  # CPU time of the serving processes' main threads (event loops) per request
    server_us: float  # CPU time of every thread of the server per request


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def server_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) used so far by the server's event loops (the main thread of
    each worker process, or of the server itself without workers) and by all its threads. Read
    from /proc, so that a noisy machine's slower or faster cores show as such rather than as a
    change in what a request costs."""
    workers = worker_pids(pid)
    loops = every = 0.0
    for proc in {pid, *workers}:
        for tid in os.listdir(f"/proc/{proc}/task"):
            try:
                stat = Path(f"/proc/{proc}/task/{tid}/stat").read_text()
            except OSError:  # the thread ended meanwhile
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            seconds = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
            every += seconds
            if proc in workers and int(tid) == proc:
                loops += seconds
    return loops, every


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def run_wrk(url: str, method: str, body: dict[str, object] | None, duration: int, connections: int,
            threads: int) -> tuple[float, float, float, int, int]:  # fmt: skip
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        if "{seed}" in url or "{prefix}" in url:  # a fresh value per request
            base, _, path = url.partition("://")[2].partition("/")
            url = url[: url.index(base) + len(base)] + "/"
            script.write(f"local path = {json.dumps('/' + path)}\n")
            script.write("local function letter() return string.char(96 + math.random(26)) end\n")
            script.write("request = function()\n")
            script.write('  local p = path:gsub("{seed}", tostring(math.random(0, 2147483647)))\n')
            script.write('  p = p:gsub("{prefix}", letter() .. letter() .. letter())\n')
            script.write("  return wrk.format(nil, p)\nend\n")
        if body is not None:
            script.write(f'wrk.method = "{method}"\n')
            script.write(f"wrk.body = {json.dumps(json.dumps(body))}\n")
            script.write('wrk.headers["Content-Type"] = "application/json"\n')
    cmd = ["wrk", "--latency", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s",
           "--timeout", "10s", "-s", script.name, url]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    Path(script.name).unlink()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    p50, p99 = (_ms(*re.match(r"([\d.]+)(\w+)", lat[k]).groups()) for k in ("50", "99"))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(x) for x in m.groups())
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m.group(1))
    return rps, p50, p99, total, errors


def check_args(p: argparse.ArgumentParser, against: Path | None, env_items: list[str]) -> dict[str, str]:
    """What the wrk benchmarks check before they start: wrk is installed, `--against` (if given)
    holds a namegen checkout, and each `--env` is NAMEGEN_NAME=VALUE. Returns the settings asked."""
    if against is not None and not (against / "app" / "main.py").is_file():
        p.error(f"--against: {str(against)!r} is not a namegen checkout (no app/main.py)")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    env: dict[str, str] = {}
    for item in env_items:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("NAMEGEN_"):
            p.error(f"--env takes NAMEGEN_NAME=VALUE, got {item!r}")
        env[name] = value
    return env


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--duration", type=int, default=10, help="seconds per endpoint")
    p.add_argument("--connections", type=int, default=32, help="open connections")
    p.add_argument("--rounds", type=int, default=1,
                   help="measure every endpoint this many times in turn and report medians: on a "
                        "noisy machine, ratios to a ceiling measured just before are steadier")  # fmt: skip
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk threads")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.add_argument("--torch-threads", type=int, default=1, help="NAMEGEN_TORCH_THREADS")
    p.add_argument("--uvicorn-args", default="", help="extra uvicorn arguments, space-separated")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="a setting for this run, e.g. NAMEGEN_MAX_BATCH_ROWS=1; repeatable")  # fmt: skip
    p.add_argument("--against", type=Path, default=None, metavar="DIR",
                   help="another checkout of namegen (say, a git worktree of an earlier commit) to "
                        "serve beside this one with the same settings and the same Python; every "
                        "round measures both in turn, and each gets its own table")  # fmt: skip
    args = p.parse_args()
    asked = check_args(p, args.against, args.env)

    uv_args = ["--no-access-log", "--workers", str(args.workers), *args.uvicorn_args.split()]
    env = {
        "NAMEGEN_TORCH_THREADS": str(args.torch_threads),
        "NAMEGEN_LOG_LEVEL": "warning",
        "NAMEGEN_WORKERS": str(args.workers),  # as the image sets it: the app's defaults follow it
        **asked,
    }
    repos = [REPO] if args.against is None else [REPO, args.against.resolve()]
    rounds: dict[Path, list[list[Result]]] = {repo: [] for repo in repos}
    with contextlib.ExitStack() as stack:
        servers = {repo: stack.enter_context(serve(env=env, args=uv_args, repo=repo)) for repo in repos}
        for srv in servers.values():  # warm-up
            for _label, method, path, body in ENDPOINTS:
                run_wrk(srv.url + path, method, body, 2, args.connections, args.wrk_threads)
        for _ in range(args.rounds):
            for repo, srv in servers.items():
                results = []
                for label, method, path, body in ENDPOINTS:
                    before = server_cpu(srv.proc.pid)
                    rps, p50, p99, total, errors = run_wrk(
                        srv.url + path, method, body, args.duration, args.connections, args.wrk_threads
                    )
                    after = server_cpu(srv.proc.pid)
                    loop_us, server_us = (
                        (b - a) / max(total, 1) * 1e6 for a, b in zip(before, after, strict=True)
                    )
                    results.append(Result(label, rps, p50, p99, total, errors, loop_us, server_us))
                rounds[repo].append(results)

    for repo in repos:
        if len(repos) > 1:
            print(f"\n{'this checkout' if repo == REPO else 'against'}: {repo}")
        print_table(rounds[repo], args)


def print_table(rounds: list[list[Result]], args: argparse.Namespace) -> None:
    print(f"wrk -t{args.wrk_threads} -c{args.connections} -d{args.duration}s, uvicorn workers "
          f"{args.workers}, torch threads {args.torch_threads} {' '.join(args.env)}".rstrip())  # fmt: skip
    if args.rounds > 1:
        print(f"{args.rounds} rounds, each endpoint in turn; medians, and the range of the ratio to the "
              f"round's own /healthz")  # fmt: skip
    range_head = " range      |" if args.rounds > 1 else ""
    print(f"\n| {'endpoint':<24} | {'req/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'requests':>8} | "
          f"{'errors':>6} | {'vs ceiling':>10} |{range_head} loop us/req | server us/req |")  # fmt: skip
    print(f"|{'-' * 26}|{'-' * 10}|{'-' * 9}|{'-' * 9}|{'-' * 10}|{'-' * 8}|{'-' * 12}|"
          f"{'-' * 12 + '|' if args.rounds > 1 else ''}{'-' * 13}|{'-' * 15}|")  # fmt: skip
    for i, (label, *_) in enumerate(ENDPOINTS):
        runs = [results[i] for results in rounds]
        ratios = [results[i].requests_per_s / results[0].requests_per_s for results in rounds]
        spread = f" {min(ratios):.2f}-{max(ratios):.2f} |" if args.rounds > 1 else ""
        print(f"| {label:<24} | {median(r.requests_per_s for r in runs):>8,.0f} | "
              f"{median(r.p50_ms for r in runs):>7.2f} | {median(r.p99_ms for r in runs):>7.2f} | "
              f"{sum(r.requests for r in runs):>8,} | {sum(r.errors for r in runs):>6} | "
              f"{median(ratios):>10.2f} |{spread} {median(r.loop_us for r in runs):>11,.0f} | "
              f"{median(r.server_us for r in runs):>13,.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
