"""State: what kplan has made, kept in SQLite (default) or PostgreSQL.

Workspaces, resources and every version of them (append-only, so any
earlier serial can be shown), hosts, the history of applies and the lock.
Secrets are encrypted at rest with AES-GCM; a write never leaves a
half-written state. The schema is versioned with Alembic migrations in state/ (kplan_state).

    store.py     StateStore: the one entry point (open, resources, put, lock...)
    location.py  where a root module's state lives (backend block, .kplan/backend.json)
                 and which workspace a run uses
    records.py   ResourceRecord, HistoryEntry: frozen values handed out
    backend.py   what differs per database (Backend protocol), SqliteBackend, make_backend
    postgres.py  PostgresBackend: psycopg 3, advisory lock + lock row per workspace
    lock.py      the flock-based lock and the holder info a second kplan sees
    transfer.py  export / import / checksum of decoded content, the sealed pulled file
    crypto.py    Cipher and load_cipher: the key from env, key file or passphrase
    keys.py      the key loaded once (thread-safe), checked against the state's key
                 check; StateStore.prepare_key resolves it before a command changes anything
    codec.py     attributes <-> JSON text with sealed secrets
    schema.py    SQLAlchemy Core tables; state/migrations (kplan_state) creates the same tables
    queries.py   the SQL; rows.py: records <-> rows (the fast load path)

The default key file is ``state.key`` beside a SQLite file, and
``.kplan/state.key`` in the working folder (the root module) for PostgreSQL,
unless KPLAN_STATE_KEY, KPLAN_STATE_KEY_FILE or KPLAN_STATE_PASSPHRASE is set.

Never here: a secret in plaintext on disk or in a message; a database password
in a message or a file; UNKNOWN in state; a write that spans two changes (each
change commits on its own); a resource write without its version row.
"""
