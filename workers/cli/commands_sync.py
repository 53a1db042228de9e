"""CLI commands: sync (filled in as the capability lands)."""

from __future__ import annotations
