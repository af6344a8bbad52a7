"""Service settings, from environment variables prefixed NAMEGEN_ (pydantic-settings)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

APP_DIR = Path(__file__).resolve().parent
REPO = APP_DIR.parent  # in a checkout: the repository (an installed package has no models/ there)
REPO_MODELS = REPO / "models"
STATIC = APP_DIR / "static"  # the playground's and the API docs' own files

# hard ceilings of the HTTP schema; the settings below may only lower them
N_CEILING = 10_000
PREFIX_CEILING = 64
LENGTH_CEILING = 64
DEFAULT_MAX_LENGTH = 32  # longest name when a /generate sets no max_length (or a longer prefix)
# defaults of the settings below that the inference code also starts from (app/inference)
MAX_ROUNDS = 8
MAX_ROUND_ROWS = 4096
MAX_SEQUENCES = 20_000
MAX_STEPS = 100_000
MAX_BATCH_ROWS = 1024
MAX_CHECKPOINT_BYTES = 64 << 20
# with one worker, polled batches of at most this many rows are checked on every turn of the event
# loop (batch_spin_rows; app/inference/batching.py)
SPIN_ROWS = 64


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NAMEGEN_", env_file=None, extra="ignore")

    models_dir: Path = Field(REPO_MODELS, description="folder of *.pt checkpoints loaded at start-up")
    default_model: str | None = Field(
        None,
        description="model used when a request names none (default: 'names' if loaded, else the first by "
        "name); start-up fails if it is set and not loaded",
    )
    skip_bad_models: bool = Field(
        False, description="log and skip checkpoints that fail to load instead of refusing to start"
    )
    manifest: Path | None = Field(
        None,
        description="a file of expected sha256 digests (sha256sum's format) to check every checkpoint "
        "against, kept apart from the models; default: SHA256SUMS in the models folder",
    )
    allow_unverified: bool = Field(
        False,
        description="load checkpoints that no manifest lists (a folder without SHA256SUMS) and format-1 "
        "checkpoints (no digests of their entries), with a warning; default: refuse to start",
    )
    max_checkpoint_bytes: int = Field(
        MAX_CHECKPOINT_BYTES,
        ge=1 << 16,
        le=1 << 34,
        description="largest checkpoint file accepted at start-up",
    )
    force_safe: bool = Field(
        False,
        description="apply the safe filter to every /generate, whatever its safe field says (a public "
        "deployment's setting); the response's safe says whether it was applied",
    )
    max_n: int = Field(1000, ge=1, le=N_CEILING, description="most names one /generate may ask for")
    max_prefix_length: int = Field(32, ge=0, le=PREFIX_CEILING, description="longest prefix accepted")
    max_score_names: int = Field(1000, ge=1, le=N_CEILING, description="most names one /score may ask for")
    max_rounds: int = Field(MAX_ROUNDS, ge=1, le=64, description="sampling rounds per /generate at most")
    max_sequences: int = Field(
        MAX_SEQUENCES,
        ge=2,
        le=1_000_000,
        description="sequences one /generate may sample in all its rounds (with full: both parts together)",
    )
    max_steps: int = Field(
        MAX_STEPS,
        ge=2 * (LENGTH_CEILING + 1),
        le=100_000_000,
        description="steps (characters and ends) one /generate may sample in all its rounds (with full: "
        "both parts together); a round never plans more rows than could fit; what bounds a request's "
        "CPU time",
    )
    score_timeout_s: float = Field(
        10.0, gt=0, le=3600, description="time after which a /score still waiting for its batch answers 503"
    )
    max_round_rows: int = Field(
        MAX_ROUND_ROWS, ge=1, le=1_000_000, description="sequences one /generate may sample in one round"
    )
    generate_timeout_s: float = Field(
        10.0, gt=0, le=3600, description="time after which /generate starts no further batch and answers"
    )
    max_batch_rows: int = Field(
        MAX_BATCH_ROWS, ge=1, le=1_000_000, description="rows one batch may hold (larger requests are split)"
    )
    batch_threads: int = Field(
        default_factory=lambda: len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1,
        ge=1,
        le=64,
        description="batches of one model running at once, each on a core (torch inter-op threads); "
        "default: the cores this process may use",
    )
    header_timeout_s: float = Field(
        10.0, gt=0, le=600, description="time a client has to send a request's headers (python -m app)"
    )
    max_header_bytes: int = Field(
        32 << 10,
        ge=1024,
        le=1 << 20,
        description="largest header block of a request (431 past it; namegen serve and the image)",
    )
    body_timeout_s: float = Field(
        10.0, gt=0, le=600, description="time a client has to send a request's body once its headers are in"
    )
    served_by_header: bool = Field(
        False, description="add X-Served-By (host/pid of the process that answered) to every response"
    )
    # how `python -m app` serves (app/http/server.py); a plain `uvicorn app.main:app` takes its own flags
    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0 in the image)")
    port: int = Field(8000, ge=1, le=65535, description="port to listen on")
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes, each with every model")
    keep_alive_s: int = Field(5, ge=1, le=600, description="idle keep-alive connections close after this (s)")
    batch_wait_ms: float = Field(
        0.0,
        ge=0,
        le=100,
        description="under load, how long a request that finds its model idle waits for others to "
        "join its batch (0: only those the event loop has read with it); on a quiet server requests "
        "start at once",
    )
    batch_spin_rows: int | None = Field(
        None,
        ge=0,
        le=1_000_000,
        description="under load, batches of at most this many rows are checked on every turn of the "
        "event loop, which then spins while one runs, rather than every millisecond (0: never); "
        "default: 64 with one worker, 0 with several",
    )
    pool_size: int = Field(
        1024,
        ge=0,
        le=100_000,
        description="a /generate of at most 16 names without a seed is answered from results sampled ahead "
        "in large batches, each with its own seed (the same seed gives the same names); names kept ahead "
        "for each kind of request at most (0: none, every request samples its own)",
    )
    pool_kinds: int = Field(
        16, ge=1, le=10_000, description="kinds of request (model and fields) kept results for, at most"
    )
    next_char_cache: int = Field(
        2048,
        ge=0,
        le=1_000_000,
        description="/next-char answers kept by request (model, prefix, condition, temperature, top_k), the "
        "least recently used dropped first (0: none; each is computed)",
    )
    max_in_flight: int = Field(
        256, ge=1, le=100_000, description="requests served at once; past it: 503 with Retry-After"
    )
    max_body_bytes: int = Field(1 << 20, ge=1024, le=1 << 30, description="largest request body (413)")
    switch_interval_ms: float = Field(
        0.2, gt=0, le=100, description="Python's GIL switch interval (sys.setswitchinterval), in ms"
    )
    torch_threads: int = Field(1, ge=1, le=64, description="torch intra-op threads per process")
    cors_origins: list[str] = Field(["*"], description="origins allowed by CORS; ['*'] allows any")
    playground: bool = Field(True, description="serve the playground page at / (false: / is a 404)")
    docs: bool = Field(
        True, description="serve the API docs pages /docs and /redoc, from local files (false: both are 404)"
    )
    log_format: Literal["text", "json"] = Field("text", description="log line format")
    log_level: Literal["debug", "info", "warning", "error"] = "info"


def spin_rows(settings: Settings) -> int:
    """The batch size up to which the event loop spins on a running batch: batch_spin_rows, or
    SPIN_ROWS with one worker and 0 with several, whose spinning event loops would take each other's
    cores (docs/performance.md)."""
    if settings.batch_spin_rows is not None:
        return settings.batch_spin_rows
    return SPIN_ROWS if settings.workers == 1 else 0


@lru_cache
def get_settings() -> Settings:
    return Settings()
