"""
namegen's command line: serve the models, or check a models folder without serving it.

    namegen serve [--host H] [--port P] [--workers N]   # same as python -m app
    namegen verify [FOLDER ...]                         # same as namegen-verify

`serve` runs uvicorn with the service's own HTTP protocol (app/http/server.py: a deadline for
every request's headers), as the image does; the flags override NAMEGEN_HOST, NAMEGEN_PORT and
NAMEGEN_WORKERS, and every other setting comes from NAMEGEN_* variables (docs/deployment.md).
"""

from __future__ import annotations

import argparse
import os
import sys

from app.config import get_settings


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="namegen", description=__doc__.strip().splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the models over HTTP (uvicorn with a header deadline)")
    serve.add_argument("--host", help="address to listen on (default: NAMEGEN_HOST, else 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: NAMEGEN_PORT, else 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (default: NAMEGEN_WORKERS, else 1)")
    sub.add_parser(
        "verify", add_help=False, help="check a models folder as start-up does (namegen verify -h)"
    )
    if argv[:1] == ["verify"]:
        from app.inference.verify import main as verify

        return verify(argv[1:])
    args = parser.parse_args(argv)
    # as NAMEGEN_* variables, so that the app in each worker process reads them too
    for key in ("host", "port", "workers"):
        if getattr(args, key) is not None:
            os.environ[f"NAMEGEN_{key.upper()}"] = str(getattr(args, key))
    get_settings.cache_clear()
    from app.http.server import main as serve_forever

    serve_forever(get_settings())
    return 0


if __name__ == "__main__":
    sys.exit(main())
