"""Boards: saved grids of panels over the stats query (``spec`` checks them, ``data`` answers
their panels, ``api`` is ``/api/v1/boards``, ``share`` the read-only links ``/b/{token}``)."""

from __future__ import annotations

from .api import board_routes

__all__ = ["board_routes"]
