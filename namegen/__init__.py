"""namegen's Python client: `from namegen import Client` (or AsyncClient). See namegen/client.py."""

from namegen.client import (
    AsyncClient,
    BadRequest,
    Client,
    NamegenError,
    NotFound,
    Overloaded,
    ServerError,
)

__all__ = ["AsyncClient", "BadRequest", "Client", "NamegenError", "NotFound", "Overloaded", "ServerError"]
