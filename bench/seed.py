"""Fill the app's tables with existing downloads, fast, from a ``Catalog``.

Every producer, course, lesson and learner of the catalog is created, then
``count`` processed ``nutror.file_downloaded`` events with their downloads,
spread over them as ``Catalog.draw`` spreads deliveries (popular courses get
more), so that the indexes are as deep and as wide as a real site's.
PostgreSQL builds the rows itself (``INSERT ... SELECT generate_series``);
SQLite gets them in large ``executemany`` batches inside one transaction.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from . import db
from .harness import FILE_DOWNLOADED, Catalog

PREFIX = "eduzz_webhooks_"
BATCH = 50_000
START = datetime(2024, 1, 1, tzinfo=UTC)
NAIVE_START = START.replace(tzinfo=None)
SPAN_SECONDS = 180 * 86_400
# Filled row by row; their indexes are built once at the end, which is much faster.
BIG_TABLES = (f"{PREFIX}webhookevent", f"{PREFIX}filedownload")


def seed_postgres(url: str, catalog: Catalog, count: int) -> None:
    """Seed the (empty) app tables of the PostgreSQL database ``url``."""
    p, c, lessons, n = (
        catalog.producers,
        catalog.courses,
        catalog.lessons_per_course,
        catalog.learners,
    )
    with db.connect(url) as conn, conn.transaction():
        conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
        conn.execute("SELECT setseed(0.42)")
        conn.execute(
            f"INSERT INTO {PREFIX}producer (id, email, name, eduzz_id) "
            "SELECT p + 1, 'producer' || p || '@bench.example', 'Produtor ' || p, '' "
            "FROM generate_series(0, %s - 1) p",
            [p],
        )
        conn.execute(
            f"INSERT INTO {PREFIX}course (id, hash, title, producer_id) "
            "SELECT c + 1, md5('course-' || c), 'Curso ' || c, c %% %s + 1 "
            "FROM generate_series(0, %s - 1) c",
            [p, c],
        )
        conn.execute(
            f"INSERT INTO {PREFIX}lesson (id, course_id, external_id, title) "
            "SELECT c * %(l)s + l + 1, c + 1, (c * %(l)s + l + 1000)::text, "
            "'Aula ' || (l + 1) || ' do curso ' || c "
            "FROM generate_series(0, %(c)s - 1) c, generate_series(0, %(l)s - 1) l",
            {"c": c, "l": lessons},
        )
        conn.execute(
            f"INSERT INTO {PREFIX}learner (id, email, name) "
            "SELECT n + 1, 'learner' || n || '@bench.example', 'Aluno ' || n "
            "FROM generate_series(0, %s - 1) n",
            [n],
        )
        # The same draw as Catalog.draw: course = courses * random()^2.
        conn.execute(
            "CREATE TEMPORARY TABLE seed ON COMMIT DROP AS "
            "SELECT i, floor(%(c)s * power(random(), 2))::int AS c, "
            "floor(random() * %(l)s)::int AS l, floor(random() * %(n)s)::int AS n, "
            "%(start)s::timestamptz + floor(random() * %(span)s) * interval '1 second' AS at "
            "FROM generate_series(1, %(count)s) i",
            {"c": c, "l": lessons, "n": n, "start": START, "span": SPAN_SECONDS, "count": count},
        )
        recreate = _drop_indexes_postgres(conn)
        date = "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
        producer = "'producer' || (c %% %(p)s) || '@bench.example'"
        payload = (
            f"jsonb_build_object('id', md5('seed-' || i), 'event', '{FILE_DOWNLOADED}', "
            f"'sentDate', {date}, 'data', jsonb_build_object("
            f"'producer', jsonb_build_object('email', {producer}, "
            "'name', 'Produtor ' || (c %% %(p)s)), "
            "'learner', jsonb_build_object('email', 'learner' || n || '@bench.example', "
            "'name', 'Aluno ' || n), "
            "'course', jsonb_build_object('hash', md5('course-' || c), 'title', 'Curso ' || c), "
            "'lesson', jsonb_build_object('id', (c * %(l)s + l + 1000)::text, "
            "'title', 'Aula ' || (l + 1) || ' do curso ' || c), "
            f"'createdAt', {date}))"
        )
        conn.execute(
            f"INSERT INTO {PREFIX}webhookevent (id, event_id, event_type, payload, sent_at, "
            "received_at, processed_at, status, error, attempts) "
            f"SELECT i, md5('seed-' || i), '{FILE_DOWNLOADED}', {payload}, "
            "at, at, at, 'processed', '', 1 FROM seed",
            {"p": p, "l": lessons},
        )
        conn.execute(
            f"INSERT INTO {PREFIX}filedownload "
            "(id, event_id, learner_id, course_id, lesson_id, producer_id, downloaded_at) "
            "SELECT i, i, n + 1, c + 1, c * %(l)s + l + 1, c %% %(p)s + 1, at FROM seed",
            {"p": p, "l": lessons},
        )
        for statement in recreate:
            conn.execute(statement)
        for table in ("producer", "course", "lesson", "learner", "webhookevent", "filedownload"):
            name = PREFIX + table
            conn.execute(
                sql.SQL(
                    "SELECT setval(pg_get_serial_sequence({}, 'id'), "
                    "(SELECT coalesce(max(id), 1) FROM {}))"
                ).format(sql.Literal(name), sql.Identifier(name))
            )
    with db.connect(url) as conn:
        # A live site's tables are vacuumed and analyzed; so are these before the measure.
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")


def _drop_indexes_postgres(conn: psycopg.Connection[tuple[Any, ...]]) -> list[str]:
    """Drop the big tables' indexes and constraints but the primary keys; return how to rebuild."""
    # Run the deferred checks of the rows inserted so far: ALTER TABLE refuses pending ones.
    conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
    constraints = conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype "
        "FROM pg_constraint WHERE conrelid::regclass::text = ANY(%s) AND contype IN ('u', 'f') "
        "ORDER BY contype DESC",  # foreign keys first: they may need the unique indexes
        [list(BIG_TABLES)],
    ).fetchall()
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) "
        "AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u'))",
        [list(BIG_TABLES)],
    ).fetchall()
    for table, name, _, _ in constraints:
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier(str(table)), sql.Identifier(str(name))
            )
        )
    for name, _ in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(str(name))))
    rebuild = [str(definition) for _, definition in indexes]
    rebuild += [
        f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}'
        for table, name, definition, _ in reversed(constraints)
    ]
    return rebuild


def seed_sqlite(path: str, catalog: Catalog, count: int) -> None:
    """Seed the (empty) app tables of the SQLite database file ``path``."""
    rng = random.Random(42)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.executemany(
            f"INSERT INTO {PREFIX}producer (id, email, name, eduzz_id) VALUES (?, ?, ?, '')",
            ((p + 1, catalog.producer_email(p), f"Produtor {p}") for p in range(catalog.producers)),
        )
        conn.executemany(
            f"INSERT INTO {PREFIX}course (id, hash, title, producer_id) VALUES (?, ?, ?, ?)",
            (
                (c + 1, catalog.course_hash(c), f"Curso {c}", catalog.producer_of(c) + 1)
                for c in range(catalog.courses)
            ),
        )
        conn.executemany(
            f"INSERT INTO {PREFIX}lesson (id, course_id, external_id, title) VALUES (?, ?, ?, ?)",
            (
                (
                    c * catalog.lessons_per_course + lesson + 1,
                    c + 1,
                    catalog.lesson_id(c, lesson),
                    f"Aula {lesson + 1} do curso {c}",
                )
                for c in range(catalog.courses)
                for lesson in range(catalog.lessons_per_course)
            ),
        )
        conn.executemany(
            f"INSERT INTO {PREFIX}learner (id, email, name) VALUES (?, ?, ?)",
            ((n + 1, catalog.learner_email(n), f"Aluno {n}") for n in range(catalog.learners)),
        )
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND tbl_name IN (?, ?)",
            BIG_TABLES,
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        rows = _sqlite_rows(catalog, rng, count)
        while batch := list(itertools.islice(rows, BATCH)):
            conn.executemany(
                f"INSERT INTO {PREFIX}webhookevent (id, event_id, event_type, payload, sent_at, "
                "received_at, processed_at, status, error, attempts) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'processed', '', 1)",
                (row[0] for row in batch),
            )
            conn.executemany(
                f"INSERT INTO {PREFIX}filedownload (id, event_id, learner_id, course_id, "
                "lesson_id, producer_id, downloaded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (row[1] for row in batch),
            )
        for _, statement in indexes:
            conn.execute(statement)
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _sqlite_rows(
    catalog: Catalog, rng: random.Random, count: int
) -> Iterator[tuple[tuple[object, ...], tuple[object, ...]]]:
    """(event row, download row) pairs; ids 1..count."""
    for i in range(1, count + 1):
        course, lesson, learner = catalog.draw(rng)
        # How Django stores an aware datetime on SQLite: UTC, without the zone.
        stamp = str(NAIVE_START + timedelta(seconds=rng.randrange(SPAN_SECONDS)))
        event_id = hashlib.md5(f"seed-{i}".encode()).hexdigest()
        payload = catalog.payload(event_id, course, lesson, learner, stamp.replace(" ", "T") + "Z")
        yield (
            (i, event_id, FILE_DOWNLOADED, json.dumps(payload), stamp, stamp, stamp),
            (
                i,
                i,
                learner + 1,
                course + 1,
                course * catalog.lessons_per_course + lesson + 1,
                catalog.producer_of(course) + 1,
                stamp,
            ),
        )
