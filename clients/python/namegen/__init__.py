"""namegen's Python client: `from namegen import Client` (or AsyncClient). See namegen/client.py;
namegen/schemas.py holds the API's response bodies.

The client's names are imported on first use, not with the package: the service imports
namegen.schemas (its response bodies are the client's), and would otherwise import httpx with them
at every start."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from namegen.client import (
        AsyncClient,
        BadRequest,
        BadResponse,
        Client,
        NamegenError,
        NotFound,
        Overloaded,
        ServerError,
        Unavailable,
    )

__all__ = [
    "AsyncClient", "BadRequest", "BadResponse", "Client", "NamegenError", "NotFound", "Overloaded",
    "ServerError", "Unavailable",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in __all__:
        from namegen import client

        return getattr(client, name)
    raise AttributeError(f"module 'namegen' has no attribute {name!r}")
