"""The benchmark's and load test's own databases: create, migrate, empty, count commits."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dj_database_url
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent

# The tables the bench project writes to; emptied between scenarios.
TABLE_PREFIXES = ("eduzz_webhooks_", "bench_", "django_tasks_database_")


def _conninfo(url: str, dbname: str | None = None) -> str:
    config = dj_database_url.parse(url)
    parts = {
        "host": config.get("HOST") or "127.0.0.1",
        "port": str(config.get("PORT") or 5432),
        "user": config.get("USER") or "postgres",
        "password": config.get("PASSWORD") or "",
        "dbname": dbname or config["NAME"],
    }
    return " ".join(f"{k}='{v}'" for k, v in parts.items() if v)


def database_name(url: str) -> str:
    return str(dj_database_url.parse(url)["NAME"])


def connect(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    """An autocommit connection to the database of ``url``."""
    return psycopg.connect(_conninfo(url), autocommit=True)


def _admin(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(_conninfo(url, "postgres"), autocommit=True)


def recreate(url: str) -> None:
    """Drop (disconnecting anyone left) and create the PostgreSQL database of ``url``."""
    name = sql.Identifier(database_name(url))
    with _admin(url) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(name))


def drop(url: str) -> None:
    name = sql.Identifier(database_name(url))
    with _admin(url) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))


def migrate(url: str, settings: str = "bench.settings") -> None:
    """``manage.py migrate`` of the bench project, in a process of its own."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings,
        "BENCH_DATABASE_URL": url,
        "PYTHONPATH": str(ROOT),
    }
    env.pop("BENCH_RUN_DIR", None)
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--no-input", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
    )


def truncate(url: str) -> None:
    """Empty every table the bench project writes to, ids restarting at 1."""
    with connect(url) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
            if str(name).startswith(TABLE_PREFIXES)
        ]
        conn.execute(
            sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                sql.SQL(", ").join(sql.Identifier(str(t)) for t in tables)
            )
        )


def settle(url: str, timeout: float = 30) -> int:
    """Wait until nobody is connected to the database and its statistics are flushed.

    Returns ``pg_stat_database.xact_commit``: a backend reports its counts at
    the latest when it exits, so the value is complete once they are gone and
    it stops moving.
    """
    name = database_name(url)
    deadline = time.monotonic() + timeout
    with _admin(url) as admin:
        while time.monotonic() < deadline:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [name]
            ).fetchone()
            if row is not None and row[0] == 0:
                break
            time.sleep(0.1)
        last = -1
        while time.monotonic() < deadline:
            admin.execute("SELECT pg_stat_clear_snapshot()")
            row = admin.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [name]
            ).fetchone()
            value = int(row[0]) if row is not None else 0
            if value == last:
                return value
            last = value
            time.sleep(0.3)
        return last


def server_version(url: str) -> str:
    with _admin(url) as admin:
        row = admin.execute("SHOW server_version").fetchone()
    return str(row[0]) if row is not None else "?"
