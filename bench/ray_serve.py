"""
Ray Serve against plain uvicorn, on this machine, in one run: throughput of GET /generate?n=1 (wrk) and
POST /generate n=100 (an async httpx client in this process) from concurrent clients, loopback,
start-up time and resident memory per replica. Needs the ray extra.

    python -m bench.ray_serve                  # 15 s per configuration
    python -m bench.ray_serve --duration 30 --clients 32

Configurations: uvicorn, 1 process (`python -m app`'s protocol, as the tests serve it); Ray Serve
with 1 replica; Ray Serve with 2 replicas (a local Ray cluster, CPUs pinned to the machine's, no
dashboard). Start-up is the time from `serve.run` to the application answering /readyz; memory is
each replica process's VmRSS after the load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import httpx

from bench.http import run_wrk
from bench.scale import throughput
from tests.support.server import free_port, rss_kb, serve


def replica_pid(ray: object, actor: dict[str, str]) -> int:
    """The process id of a Serve replica actor."""
    handle = ray.get_actor(actor["name"], namespace=actor["namespace"])  # type: ignore[attr-defined]
    pid: int = ray.get(handle.__ray_call__.remote(lambda self: os.getpid()))  # type: ignore[attr-defined]
    return pid


def small_and_large(url: str, seconds: float, clients: int) -> tuple[float, float]:
    """Requests/s of GET /generate?n=1 from wrk (`clients` connections; a Python client tops out
    far below the server) and of POST /generate n=100 from clients / 8 Python clients."""
    small, _, _, _, _ = run_wrk(f"{url}/generate?n=1", "GET", None, int(seconds), clients, 1)
    body = {"n": 100, "unique": False}
    _, large, _ = asyncio.run(throughput(url, seconds, max(1, clients // 8), body))
    return small, large


Row = tuple[str, float, float, float, list[int]]  # label, n=1 req/s, n=100 req/s, start-up s, RSS kB


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--duration", type=float, default=15, help="seconds per endpoint and configuration")
    p.add_argument("--clients", type=int, default=32, help="concurrent clients for n=1")
    args = p.parse_args()
    rows: list[Row] = []
    started = time.monotonic()
    with serve(env={"NAMEGEN_LOG_LEVEL": "warning"}, args=["--no-access-log"]) as srv:
        ready = time.monotonic() - started
        small_and_large(srv.url, 3, args.clients)  # warm-up
        small, large = small_and_large(srv.url, args.duration, args.clients)
        rows.append(("uvicorn, 1 process", small, large, ready, [rss_kb(srv.proc.pid)]))

    import ray
    from ray import serve as ray_serve

    from app.ray_serve import build

    os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")
    os.environ["NAMEGEN_LOG_LEVEL"] = "warning"
    ray.init(num_cpus=len(os.sched_getaffinity(0)), include_dashboard=False, log_to_driver=False)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        ray_serve.start(http_options={"host": "127.0.0.1", "port": port})
        for replicas in (1, 2):
            t0 = time.monotonic()
            ray_serve.run(build({"replicas": str(replicas)}), name="namegen", route_prefix="/")
            while httpx.get(f"{url}/readyz", timeout=10).status_code != 200:
                time.sleep(0.1)
            ready = time.monotonic() - t0
            small_and_large(url, 3, args.clients)  # warm-up
            small, large = small_and_large(url, args.duration, args.clients)
            actors = [
                a for a in ray.util.list_named_actors(all_namespaces=True) if "SERVE_REPLICA" in a["name"]
            ]
            pids = [replica_pid(ray, a) for a in actors]
            rows.append((f"Ray Serve, {replicas} replica{'s' if replicas > 1 else ''}", small, large, ready,
                         [rss_kb(pid) for pid in pids]))  # fmt: skip
            ray_serve.delete("namegen")
        # the table before the cluster's shutdown, which has been seen to hang (Ray 2.60 retrying
        # its controller's graceful shutdown after killing it): the figures are never lost to it
        print_table(rows, args.clients, args.duration)
    finally:
        ray_serve.shutdown()
        ray.shutdown()


def print_table(rows: list[Row], clients: int, duration: float) -> None:
    print(f"{len(os.sched_getaffinity(0))} cores; {clients} clients for n=1, "
          f"{max(1, clients // 8)} for n=100; {duration:.0f} s each\n")  # fmt: skip
    print("| configuration | GET /generate n=1 req/s | POST /generate n=100 req/s | start-up s "
          "| RSS per replica MB |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | --- |")
    for label, small, large, ready, rss in rows:
        per_replica = ", ".join(f"{r / 1024:.0f}" for r in rss)
        print(f"| {label} | {small:,.0f} | {large:,.0f} | {ready:.1f} | {per_replica} |", flush=True)


if __name__ == "__main__":
    main()
