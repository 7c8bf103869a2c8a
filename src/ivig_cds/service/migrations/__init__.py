"""Alembic migrations of the decision store (versioned; `store.migrate` applies them)."""
