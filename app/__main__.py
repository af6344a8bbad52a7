"""Serve namegen: `python -m app` (see app/http/server.py)."""

from app.http.server import main

main()
