"""Serve namegen: `python -m app` (see app/server.py)."""

from app.server import main

main()
