"""Adapters: bytes from feeds and files → model objects (the edge)."""
