"""CLI commands: requests (filled in as the capability lands)."""

from __future__ import annotations
