"""Alembic environment and revisions of the bookkeeping schema (installed as
`connector.migrations`)."""
