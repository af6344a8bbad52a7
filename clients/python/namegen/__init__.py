"""namegen's Python client: `from namegen import Client` (or AsyncClient). See namegen/client.py;
namegen/schemas.py holds the API's response bodies."""

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
