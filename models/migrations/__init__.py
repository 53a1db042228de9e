"""Alembic migrations for the ledger, shipped inside the package (see models.ledger.migrate)."""
