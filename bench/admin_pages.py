"""Time the admin's insight page over 1,000,000 seeded downloads on PostgreSQL.

Seeds the database ``eduzz_bench_admin`` once (``bench.seed``, the benchmark's
catalog: 1,000 courses, 200,000 learners, 180 days from 2024-01-01) and reuses
it on later runs while the app's migrations, the seed and the row count are
unchanged; ``--reseed`` starts it over. Then it requests the page with Django's
test ``Client``, logged in as a superuser, several times per scenario and
prints the median and fastest time, the median time spent in the database and
the number of queries. ``--explain`` also prints the plan of each query slower
than 20 ms. The machine's load average is printed too: on a busy machine every
time grows with it. So the median CPU time is printed as well, this process's
plus its PostgreSQL backend's (read from /proc, when the server is local): what
a request costs on an idle core, whatever the load (parallel workers' CPU is
not counted; ``PGOPTIONS="-c max_parallel_workers_per_gather=0"`` runs none).

    python -m bench.admin_pages [--runs 7] [--rows 1000000] [--reseed] [--explain]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import time
from pathlib import Path

import psycopg
from psycopg import sql

URL = "postgres://postgres@127.0.0.1:5432/eduzz_bench_admin"
# The seeded downloads end on 2024-06-29 (UTC); these are their last 30 days.
LAST_30_DAYS = {"start": "2024-05-31", "end": "2024-06-29"}
SCENARIOS = [
    ("default: opens on the latest 30 days with downloads", {}),
    ("30 days", LAST_30_DAYS),
    ("30 days, the most downloaded course", {**LAST_30_DAYS, "course": "1"}),
    ("30 days, a quiet course", {**LAST_30_DAYS, "course": "1000"}),
    ("366 days (every download)", {"start": "2024-01-01", "end": "2024-12-31"}),
]


def fingerprint(rows: int) -> str:
    """What the seeded database was built from: the app's migrations (edited in place before
    a release), the seed and the number of rows."""
    from . import db

    digest = hashlib.sha256(str(rows).encode())
    for path in sorted((db.ROOT / "eduzz_webhooks" / "migrations").glob("*.py")):
        digest.update(path.read_bytes())
    digest.update(Path(__file__).with_name("seed.py").read_bytes())
    return digest.hexdigest()


def seeded_fingerprint(url: str) -> str | None:
    """The fingerprint the database was seeded with, or None if it doesn't exist."""
    from . import db

    try:
        with db.connect(url) as conn:
            row = conn.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                "WHERE datname = current_database()"
            ).fetchone()
    except psycopg.OperationalError:
        return None
    return row[0] if row else None


def prepare(url: str, rows: int, reseed: bool) -> None:
    from . import db, seed
    from .run import CATALOG

    name = db.database_name(url)
    wanted = fingerprint(rows)
    if not reseed and seeded_fingerprint(url) == wanted:
        print(f"reusing {name}: {rows:,} downloads")
        return
    started = time.monotonic()
    db.recreate(url)
    db.migrate(url, settings="bench.settings_admin")
    seed.seed_postgres(url, CATALOG, rows)
    with db.connect(url) as conn:
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name), sql.Literal(wanted)
            )
        )
    print(f"seeded {rows:,} downloads in {time.monotonic() - started:.0f} s")


def backend_cpu(pid: int) -> float:
    """Seconds of CPU the PostgreSQL backend ``pid`` has used, or NaN if it isn't visible."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    # utime and stime, the 14th and 15th fields, counted after the command's name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(runs: int, explain: bool) -> None:
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    user = User.objects.filter(username="bench").first() or User.objects.create_superuser(
        "bench", "bench@bench.example", "bench"
    )
    client = Client()
    client.force_login(user)
    url = reverse("admin:eduzz_webhooks_filedownload_insight")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    print(f"load average: {' '.join(f'{n:.1f}' for n in os.getloadavg())}, {os.cpu_count()} CPUs")
    columns = ("median", "fastest", "database", "CPU")
    print(f"{'scenario':<52}", *(f"{c:>9}" for c in columns), f"{'queries':>8}")
    for label, params in SCENARIOS:
        client.get(url, params)  # warm the caches: the connection, templates, the table's pages
        times, in_database, cpu = [], [], []
        for _ in range(runs):
            with CaptureQueriesContext(connection) as queries:
                cpu_before = time.process_time() + backend_cpu(backend)
                started = time.perf_counter()
                response = client.get(url, params)
                times.append(time.perf_counter() - started)
                cpu.append(time.process_time() + backend_cpu(backend) - cpu_before)
            assert response.status_code == 200, response.status_code
            in_database.append(sum(float(q["time"]) for q in queries.captured_queries))
        print(
            f"{label:<52} {statistics.median(times) * 1000:>6.0f} ms "
            f"{min(times) * 1000:>6.0f} ms {statistics.median(in_database) * 1000:>6.0f} ms "
            f"{statistics.median(cpu) * 1000:>6.0f} ms {len(queries):>8}"
        )
        if explain:
            with connection.cursor() as cursor:
                for query in queries.captured_queries:
                    if float(query["time"]) > 0.02:
                        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {query['sql']}")
                        print(f"\n{query['time']} s: {query['sql']}")
                        print("\n".join(row[0] for row in cursor.fetchall()), "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=URL)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--reseed", action="store_true", help="seed again even if present")
    parser.add_argument("--explain", action="store_true", help="plans of the slow queries")
    options = parser.parse_args()
    os.environ["BENCH_DATABASE_URL"] = options.database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings_admin"
    prepare(options.database_url, options.rows, options.reseed)
    measure(options.runs, options.explain)


if __name__ == "__main__":
    main()
