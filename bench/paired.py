"""
Paired A/B of two checkouts over HTTP, for differences smaller than this machine's drift: both
served at once (real uvicorn processes, the same settings), and, pair after pair, each measured in
turn with a short wrk run on /healthz and then on the endpoint, which goes first alternating. Each
server's ratio (endpoint over its own /healthz) is compared within the pair, so a minute in which
the cores run slower moves both sides of a pair alike. Prints, per endpoint, the median ratio of
each checkout, the median of the other's over this one's per pair with its range and how many
pairs it won, and what a request costs each server's event loop and whole process in CPU time.

    python -m bench.paired --against ../head
    python -m bench.paired --against ../head --pairs 16 --duration 2 --path '/next-char?prefix=emm'

Needs wrk (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from bench.http import check_args, run_wrk, server_cpu
from tests.support.server import REPO, Server, serve


def measure(srv: Server, path: str, duration: int, connections: int) -> tuple[float, float, float]:
    """The endpoint's requests/s over the server's own /healthz just before, and the event loop's
    and the whole server's CPU time per request of the endpoint, in microseconds."""
    ceiling = run_wrk(srv.url + "/healthz", "GET", None, duration, connections, 1)[0]
    loop0, all0 = server_cpu(srv.proc.pid)
    rps, _, _, total, errors = run_wrk(srv.url + path, "GET", None, duration, connections, 1)
    loop1, all1 = server_cpu(srv.proc.pid)
    if errors:
        raise SystemExit(f"{errors} errors on {path}: the comparison would not be fair")
    return rps / ceiling, (loop1 - loop0) / total * 1e6, (all1 - all0) / total * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--against", type=Path, required=True, metavar="DIR", help="the other checkout")
    p.add_argument("--pairs", type=int, default=10, help="pairs of runs per endpoint")
    p.add_argument("--duration", type=int, default=2, help="seconds of each wrk run")
    p.add_argument("--connections", type=int, default=32, help="wrk connections")
    p.add_argument("--path", action="append", default=None, help="GET endpoint(s) to compare, "
                   "each against /healthz (default: /generate?n=1 and /next-char?prefix=emm)")  # fmt: skip
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="a NAMEGEN_ setting for both servers (repeatable)")  # fmt: skip
    args = p.parse_args()
    env = {"NAMEGEN_LOG_LEVEL": "warning", **check_args(p, args.against, args.env)}
    other = args.against.resolve()
    paths = args.path or ["/generate?n=1", "/next-char?prefix=emm"]
    uv_args = ["--no-access-log"]
    print(f"wrk -t1 -c{args.connections}, {args.pairs} pairs of {args.duration} s runs per endpoint; "
          f"other: {other}")  # fmt: skip
    print("\n| endpoint | this: ratio to /healthz | other | other / this per pair: median | range "
          "| pairs other won | loop us/req this / other | server us/req this / other |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | --- | ---: | --- | --- |")
    with serve(env=env, args=uv_args, repo=REPO) as this, serve(env=env, args=uv_args, repo=other) as that:
        for path in paths:
            for srv in (this, that):  # warm-up: TorchScript's first runs, the connections
                run_wrk(srv.url + path, "GET", None, 1, args.connections, 1)
            mine: list[tuple[float, float, float]] = []
            theirs: list[tuple[float, float, float]] = []
            for i in range(args.pairs):
                order = [(this, mine), (that, theirs)]
                for srv, out in order if i % 2 == 0 else order[::-1]:
                    out.append(measure(srv, path, args.duration, args.connections))
            rel = [b[0] / a[0] for a, b in zip(mine, theirs, strict=True)]
            med = [statistics.median(x[k] for x in side) for side in (mine, theirs) for k in range(3)]
            print(f"| {path} | {med[0]:.3f} | {med[3]:.3f} | {statistics.median(rel):.3f} | "
                  f"{min(rel):.3f}-{max(rel):.3f} | {sum(r > 1 for r in rel)}/{len(rel)} | "
                  f"{med[1]:.0f} / {med[4]:.0f} | {med[2]:.0f} / {med[5]:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
