"""The server: ingest API, query API, auth. Imports the wire schema and the store, never the
SDK."""

from .app import create_app

__all__ = ["create_app"]
