"""Revisions of the account database, oldest first: each file is one Alembic revision."""
