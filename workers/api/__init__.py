"""The HTTP API (FastAPI): ``create_app`` builds it; ``grantledger api`` serves it."""

from workers.api.app import create_app

__all__ = ["create_app"]
