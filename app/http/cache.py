"""Response bodies of a route whose answer depends on its request alone (/next-char), kept by
request, the least recently used dropped first: a prefix many clients type is computed once."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class ResponseCache:
    """At most `size` bodies (0: none kept). Use from the event loop."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.bodies: OrderedDict[Hashable, bytes] = OrderedDict()

    def get(self, key: Hashable) -> bytes | None:
        body = self.bodies.get(key)
        if body is not None:
            self.bodies.move_to_end(key)
        return body

    def put(self, key: Hashable, body: bytes) -> None:
        if self.size == 0:
            return
        self.bodies[key] = body
        self.bodies.move_to_end(key)
        if len(self.bodies) > self.size:
            self.bodies.popitem(last=False)
