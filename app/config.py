"""Service settings, from environment variables prefixed NAMEGEN_ (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_MODELS = Path(__file__).resolve().parents[1] / "models"

# hard ceilings of the HTTP schema; the settings below may only lower them
N_CEILING = 10_000
PREFIX_CEILING = 64
LENGTH_CEILING = 64


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NAMEGEN_", env_file=None, extra="ignore")

    models_dir: Path = Field(REPO_MODELS, description="folder of *.pt checkpoints loaded at start-up")
    default_model: str | None = Field(
        None, description="model used when a request names none (default: 'names' if loaded)"
    )
    skip_bad_models: bool = Field(
        False, description="log and skip checkpoints that fail to load instead of refusing to start"
    )
    max_n: int = Field(1000, ge=1, le=N_CEILING, description="most names one /generate may ask for")
    max_prefix_length: int = Field(32, ge=0, le=PREFIX_CEILING, description="longest prefix accepted")
    max_score_names: int = Field(1000, ge=1, le=N_CEILING, description="most names one /score may ask for")
    max_rounds: int = Field(8, ge=1, le=64, description="sampling batches per /generate at most")
    max_batch_rows: int = Field(
        8192, ge=1, le=1_000_000, description="rows one micro-batch of concurrent requests may hold"
    )
    batch_wait_ms: float = Field(
        0.0,
        ge=0,
        le=100,
        description="under load, how long a request that finds its model idle waits for others to "
        "join its batch (0: never); on a quiet server requests start at once",
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
    log_format: Literal["text", "json"] = Field("text", description="log line format")
    log_level: Literal["debug", "info", "warning", "error"] = "info"


@lru_cache
def get_settings() -> Settings:
    return Settings()
