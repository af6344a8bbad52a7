"""What the tests and the benchmarks share: a real uvicorn process on a free port (server), slow
clients that trickle a request (slow), and the repository's paths."""

from app.config import REPO, REPO_MODELS

MODELS = REPO_MODELS  # the shipped checkpoints
RESOURCES = REPO / "resources"  # the corpora

__all__ = ["MODELS", "REPO", "RESOURCES"]
