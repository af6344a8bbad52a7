"""
The namegen HTTP service: builds the FastAPI app and wires its routers.

    uvicorn app.main:app --port 8000

Models are loaded in the lifespan, never at import: every *.pt in NAMEGEN_MODELS_DIR is loaded and
checked, and the service refuses to start, naming the bad file, if one fails.
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import torch
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings, get_settings, spin_rows
from app.http.cache import ResponseCache
from app.http.deps import Service
from app.http.errors import install_error_handlers
from app.http.logs import configure_logging
from app.http.metrics import Metrics
from app.http.middleware import ServiceMiddleware
from app.http.openapi import install_openapi
from app.http.routes import docs, generate, health, metrics, models, next_char, playground, score
from app.inference.batching import BatchRunner, warm_up
from app.inference.checkpoint import CheckpointError
from app.inference.pool import SamplePool
from app.inference.registry import load_registry

logger = logging.getLogger("namegen.main")

GC_YOUNG_THRESHOLD = 10_000  # young tracked objects that start a collection; see lifespan

DESCRIPTION = """
Sample names from small character-level hierarchical ("WaveNet-ish") models.

- `GET /models`: what is loaded, with each model's measured quality
- `POST|GET /generate`: new names (count, temperature, top-k/top-p, seed, prefix, lengths, unique, novel)
- `POST|GET /next-char`: the probability of every next character after a prefix
- `POST /score`: how name-like a string is
"""


def current_settings(app: FastAPI) -> Settings:
    """The settings in force: get_settings, unless a test overrides it."""
    provider = app.dependency_overrides.get(get_settings, get_settings)
    settings: Settings = provider()
    return settings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = current_settings(app)
    configure_logging(settings.log_format, settings.log_level)
    torch.set_num_threads(settings.torch_threads)
    set_interop_threads(settings.batch_threads)
    # TorchScript optimises a graph on its first call rather than after a profiling call: the
    # warm-up (BatchRunner) then costs a third less, and the loops run as fast (docs/performance.md)
    torch._C._jit_set_num_profiled_runs(0)  # type: ignore[arg-type]  # the stub says a size; it is a count
    # the callback that hands a batch started on an idle model back (on a torch pool thread) needs
    # the GIL briefly; with Python's default 5 ms switch interval it could wait that long for a
    # busy event loop (docs/performance.md: what each setting changes)
    sys.setswitchinterval(settings.switch_interval_ms / 1000)
    t0 = time.perf_counter()
    try:
        registry = load_registry(
            settings.models_dir,
            settings.default_model,
            settings.skip_bad_models,
            manifest_path=settings.manifest,
            allow_unverified=settings.allow_unverified,
            max_bytes=settings.max_checkpoint_bytes,
            threads=settings.batch_threads,
            prepare=warm_up,  # each model's batch loop warmed in its loading thread, beside the others
        )
    except CheckpointError as e:
        app.state.startup_failure = f"cannot start: {e}"  # for hosts that run the lifespan themselves
        raise
    app.state.metrics.set_models(
        (m.name, m.meta["parameters"], m.context_length, m.meta["metrics"]["test_loss"], m.sha256)
        for m in registry.models.values()
    )
    runner = BatchRunner(
        registry,
        max_rows=settings.max_batch_rows,
        wait_s=settings.batch_wait_ms / 1000,
        parallel=settings.batch_threads,
        on_cancel=app.state.metrics.count_cancelled,
        spin_rows=spin_rows(settings),
    )
    pool = SamplePool(runner, settings.pool_size, settings.pool_kinds)
    next_chars = ResponseCache(settings.next_char_cache)
    app.state.service = Service(registry, runner, pool, next_chars, settings, app.state.metrics)
    # what is loaded lives as long as the process: out of the collector's reach, and young
    # collections rarer (docs/performance.md, "The garbage collector", has why and what it saves)
    gc.collect()
    gc.freeze()
    young_threshold, *older = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *older)
    logger.info(
        "ready: %d models (%s), default %s, loaded in %.0f ms",
        len(registry.models),
        ", ".join(registry.names()),
        registry.default,
        (time.perf_counter() - t0) * 1000,
    )
    try:
        yield
    finally:
        app.state.service = None
        pool.close()
        runner.close()
        gc.set_threshold(young_threshold, *older)
        gc.unfreeze()


def set_interop_threads(n: int) -> None:
    """torch's inter-op pool, where batches run, sized to run n at once. torch takes this only
    before its first parallel work; a second app in the same process (the tests) keeps the first
    size, which the log says."""
    if torch.get_num_interop_threads() == n:
        return
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:
        logger.warning("torch's inter-op threads stay %d (asked: %d)", torch.get_num_interop_threads(), n)


class StartupFailureMiddleware:
    """When start-up fails on a bad checkpoint, report the one-line reason (which names the file)
    instead of the traceback the server would print. Other failures keep their traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_short(message: Message) -> None:
            text = str(message.get("message", ""))
            marker = f"{CheckpointError.__module__}.{CheckpointError.__name__}: "
            if message["type"] == "lifespan.startup.failed" and marker in text:
                reason = text.rsplit(marker, 1)[1].strip()
                message = {**message, "message": f"cannot start: {reason}"}
            await send(message)

        await self.app(scope, receive, send_short)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app, its middleware set up from `settings` (default: get_settings(), from the
    environment). Tests that pass settings override get_settings with the same object, so that the
    lifespan reads them too."""
    given = settings
    settings = get_settings() if given is None else given
    # the documentation pages are docs.router's, with the viewers' files served from here
    app = FastAPI(
        title="namegen",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    if given is not None:
        app.dependency_overrides[get_settings] = lambda: given
    app.state.service = None
    install_error_handlers(app)
    cors: dict[str, Any] = {
        "allow_origins": settings.cors_origins,
        "allow_credentials": False,
        "allow_methods": ["GET", "POST", "OPTIONS"],
        "allow_headers": ["*"],
        "expose_headers": [
            "X-Request-ID",
            "Retry-After",
            *(["X-Served-By"] if settings.served_by_header else []),
        ],
    }
    app.add_middleware(CORSMiddleware, **cors)
    app.add_middleware(StartupFailureMiddleware)
    app.state.metrics = Metrics()
    app.add_middleware(
        ServiceMiddleware,
        metrics=app.state.metrics,
        max_in_flight=settings.max_in_flight,
        max_body_bytes=settings.max_body_bytes,
        cors=cors,
        body_timeout_s=settings.body_timeout_s,
        served_by=settings.served_by_header,
    )  # outermost: it counts, limits and logs every request
    # routes are matched router by router, in this order: the probes, then by expected traffic
    for module in (health, generate, next_char, score, models, metrics):
        app.include_router(module.router)
    if settings.playground:
        app.include_router(playground.router)
    if settings.docs:
        app.include_router(docs.router)
    install_openapi(app)
    return app


app = create_app()
