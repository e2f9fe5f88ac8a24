"""State: what kplan has made, kept in SQLite (default) or PostgreSQL.

Workspaces, resources, hosts, the history of applies and the lock. Secrets
are encrypted at rest with AES-GCM; a write never leaves a half-written
state. The schema is versioned with Alembic migrations kept beside it.
"""
