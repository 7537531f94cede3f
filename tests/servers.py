"""What differs between the database servers of the concurrency tests: PostgreSQL, MariaDB."""

from __future__ import annotations

import contextlib
from typing import Any

from django.db import DatabaseError, connection


def kill_own_connection(cursor: Any) -> None:
    """The server ends the connection of ``cursor``: the statement fails, as do later ones."""
    if connection.vendor == "postgresql":
        cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    else:
        cursor.execute("KILL CONNECTION_ID()")


def kill_other_connections(cursor: Any) -> int:
    """The server ends every other connection to the test database; how many it ended."""
    if connection.vendor == "postgresql":
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return len(cursor.fetchall())
    cursor.execute(
        "SELECT id FROM information_schema.processlist"
        " WHERE db = DATABASE() AND id <> CONNECTION_ID()"
    )
    killed = 0
    for (thread_id,) in cursor.fetchall():
        with contextlib.suppress(DatabaseError):  # it ended meanwhile
            cursor.execute("KILL %s", [thread_id])
            killed += 1
    return killed
