"""Time every admin page of the app over 1,000,000 seeded downloads on PostgreSQL.

Seeds the database ``eduzz_bench_admin`` once (``bench.seed``, the benchmark's
catalog: 100 producers, 1,000 courses of 20 lessons, 200,000 learners, 180 days
from 2024-01-01) and reuses it on later runs while the app's migrations, the
seed and the row count are unchanged; ``--reseed`` starts it over. Then it
requests each page with Django's test ``Client``, logged in as a superuser:
every list with its searches (a full e-mail, a fragment of one, a name), its
filters (each of the date filter's choices, as on the seed's last day) and its
sortable columns, every object's page, the insight page, the CSV export (its
first rows, as a browser starts to save it) and the learner's history link.
Several times each; it prints the median and fastest time, the median time
spent in the database, the number of queries and PASS or FAIL against the goal
(0.5 s, the median). ``--explain`` also prints the plan of each query slower
than 20 ms; ``--only TEXT`` runs the pages whose label contains TEXT;
``--markdown`` prints the table for the docs.

The machine's load average is printed too: on a busy machine every time grows
with it. So the median CPU time is printed as well, this process's plus its
PostgreSQL backend's (read from /proc, when the server is local): what a
request costs on an idle core, whatever the load (parallel workers' CPU is not
counted; ``PGOPTIONS="-c max_parallel_workers_per_gather=0"`` runs none).

    python -m bench.admin_pages [--runs 5] [--rows 1000000] [--reseed] [--explain]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

URL = "postgres://postgres@127.0.0.1:5432/eduzz_bench_admin"
GOAL = 0.5  # seconds, the median of a page
TIMEOUT = 30  # seconds: a slower query is cancelled and its page fails
SLOW_QUERY = 0.02  # seconds: --explain prints the plans of slower queries

# Rows of the seed (bench.seed): row n of a table has the id n + 1.
LEARNER = 12345  # learner12345@bench.example, "Aluno 12345": 10 downloads
LEARNER_ID = LEARNER + 1
DOWNLOAD_ID = EVENT_ID = 500_000
# The seeded downloads end on 2024-06-29 (UTC); these are their last 30 days.
LAST_30_DAYS = {"start": "2024-05-31", "end": "2024-06-29"}
ONE_DAY = {
    "downloaded_at__gte": "2024-06-15T00:00:00-03:00",
    "downloaded_at__lt": "2024-06-16T00:00:00-03:00",
}


def date_choices(field: str) -> dict[str, dict[str, str]]:
    """The date filter's choices on ``field`` (today, the past 7 days, this month, this year)
    as it links them on the seeded downloads' last day in São Paulo, 2024-06-28."""

    def span(since: str, until: str) -> dict[str, str]:
        return {
            f"{field}__gte": f"{since}T00:00:00-03:00",
            f"{field}__lt": f"{until}T00:00:00-03:00",
        }

    return {
        "today": span("2024-06-28", "2024-06-29"),
        "past 7 days": span("2024-06-21", "2024-06-29"),
        "this month": span("2024-06-01", "2024-07-01"),
        "this year": span("2024-01-01", "2025-01-01"),
    }


JUNE = date_choices("downloaded_at")["this month"]


@dataclass(frozen=True)
class Page:
    """An admin page to time: the URL ``name`` (in the app's namespace unless it has a colon)."""

    label: str
    name: str
    params: dict[str, str] = field(default_factory=dict)
    args: tuple[Any, ...] = ()
    # A CSV export: read this many chunks of its stream (0: all of it).
    chunks: int | None = None

    def url(self) -> str:
        from django.urls import reverse

        name = self.name if ":" in self.name else f"admin:eduzz_webhooks_{self.name}"
        return reverse(name, args=self.args)


def changelist(model: str, label: str, **params: Any) -> Page:
    return Page(
        f"{model} list: {label}", f"{model}_changelist", {k: str(v) for k, v in params.items()}
    )


def change(model: str, pk: int, label: str = "") -> Page:
    return Page(f"{model} page{f' ({label})' if label else ''}", f"{model}_change", args=(pk,))


EMAIL = f"learner{LEARNER}@bench.example"
PAGES = [
    Page("admin index", "admin:index"),
    Page("app index", "admin:app_list", args=("eduzz_webhooks",)),
    # File downloads: 1,000,000 rows.
    changelist("filedownload", "default"),
    changelist("filedownload", "search a full e-mail", q=EMAIL),
    changelist("filedownload", "search an e-mail fragment", q=f"learner{LEARNER}"),
    changelist("filedownload", "search a name", q=f"Aluno {LEARNER}"),
    changelist("filedownload", "search a domain (every learner)", q="@bench.example"),
    changelist("filedownload", "search a course title", q="Curso 17"),
    changelist("filedownload", "search a lesson title", q="Aula 3 do curso 17"),
    changelist("filedownload", "search no match", q="nobody@nowhere.example"),
    changelist("filedownload", "course filter (busiest)", course__id__exact=1),
    changelist("filedownload", "course filter + e-mail", course__id__exact=1, q=EMAIL),
    *(
        changelist("filedownload", f"date filter: {label}", **params)
        for label, params in date_choices("downloaded_at").items()
    ),
    changelist("filedownload", "learner history link", learner__id__exact=LEARNER_ID),
    changelist("filedownload", "lesson link", lesson__id__exact=1),
    changelist("filedownload", "insight day link", course__id__exact=1, **ONE_DAY),
    changelist("filedownload", "oldest first", o=0),
    changelist("filedownload", "sorted by learner", o=1),
    changelist("filedownload", "a month, sorted by learner", o=1, **JUNE),
    changelist("filedownload", "page 100", p=100),
    changelist("filedownload", "counts beside the filters", _facets="True"),
    change("filedownload", DOWNLOAD_ID),
    Page("CSV export: a full e-mail, all", "filedownload_export", {"q": EMAIL}, chunks=0),
    Page(
        "CSV export: busiest course, first 2,000",
        "filedownload_export",
        {"course__id__exact": "1"},
        chunks=1,
    ),
    Page("CSV export: everything, first 2,000", "filedownload_export", chunks=1),
    Page("insight: default (latest 30 days with data)", "filedownload_insight"),
    Page("insight: 30 days", "filedownload_insight", LAST_30_DAYS),
    Page(
        "insight: 30 days, busiest course", "filedownload_insight", {**LAST_30_DAYS, "course": "1"}
    ),
    Page(
        "insight: 30 days, a quiet course",
        "filedownload_insight",
        {**LAST_30_DAYS, "course": "1000"},
    ),
    Page(
        "insight: 366 days (every download)",
        "filedownload_insight",
        {"start": "2024-01-01", "end": "2024-12-31"},
    ),
    # Webhook events: 1,000,000 rows.
    changelist("webhookevent", "default"),
    changelist("webhookevent", "search an event id", q="bc90fa80765aa5b9826740b44c5dd371"),
    changelist("webhookevent", "status filter: failed", status__exact="failed"),
    changelist("webhookevent", "status filter: processed", status__exact="processed"),
    changelist("webhookevent", "type filter", event_type="nutror.file_downloaded"),
    *(
        changelist("webhookevent", f"date filter: {label}", **params)
        for label, params in date_choices("received_at").items()
    ),
    changelist("webhookevent", "sorted by event id", o=1),
    changelist("webhookevent", "oldest first", o=5),
    change("webhookevent", EVENT_ID),
    # Learners: 200,000 rows.
    changelist("learner", "default"),
    changelist("learner", "search a full e-mail", q=EMAIL),
    changelist("learner", "search an e-mail fragment", q=f"learner{LEARNER}"),
    changelist("learner", "search a name", q=f"Aluno {LEARNER}"),
    changelist("learner", "sorted by name", o=2),
    change("learner", LEARNER_ID, "their history"),
    # Courses: 1,000 rows.
    changelist("course", "default"),
    changelist("course", "search a title", q="Curso 17"),
    changelist("course", "search a hash", q=hashlib.md5(b"course-16").hexdigest()),
    changelist("course", "sorted by producer", o=2),
    changelist("course", "sorted by downloads", o=-3),
    change("course", 1, "busiest, its lessons"),
    # Lessons: 20,000 rows.
    changelist("lesson", "default"),
    changelist("lesson", "search a title", q="Aula 3 do curso 17"),
    changelist("lesson", "a course's lessons", course__id__exact=1),
    changelist("lesson", "sorted by course", o=2),
    changelist("lesson", "sorted by downloads", o=-3),
    change("lesson", 1),
    # Producers: 100 rows.
    changelist("producer", "default"),
    changelist("producer", "search a full e-mail", q="producer7@bench.example"),
    changelist("producer", "search a name", q="Produtor 7"),
    changelist("producer", "sorted by downloads", o=-3),
    change("producer", 1),
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


@dataclass
class Result:
    page: Page
    times: list[float]
    in_database: list[float]
    cpu: list[float]
    queries: int

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def passed(self) -> bool:
        return self.median < GOAL


def fetch(client: Any, page: Page, url: str) -> None:
    """Request ``page``; read as much of a CSV export as it asks."""
    response = client.get(url, page.params)
    assert response.status_code == 200, (page.label, response.status_code)
    if page.chunks is not None:
        stream = iter(response.streaming_content)
        for number, chunk in enumerate(stream, start=1):
            assert chunk
            if number == page.chunks:
                break
        response.close()  # stops the query and frees its cursor


def measure(pages: list[Page], runs: int, explain: bool) -> list[Result]:
    import logging

    import django

    django.setup()
    logging.getLogger("django.request").setLevel(logging.CRITICAL)  # the table says FAIL
    from django.contrib.auth.models import User
    from django.db import OperationalError, connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    user = User.objects.filter(username="bench").first() or User.objects.create_superuser(
        "bench", "bench@bench.example", "bench"
    )
    client = Client()
    client.force_login(user)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
        cursor.execute(f"SET statement_timeout = '{TIMEOUT}s'")
    results = []
    columns = ("median", "fastest", "database", "CPU")
    print(f"{'page':<60}", *(f"{c:>9}" for c in columns), f"{'queries':>8}", " goal")
    for page in pages:
        url = page.url()
        try:
            fetch(
                client, page, url
            )  # warm the caches: the connection, templates, the table's pages
        except OperationalError as exc:
            print(f"{page.label:<60} {exc}".strip(), "FAIL", flush=True)
            results.append(Result(page, [float(TIMEOUT)], [float(TIMEOUT)], [float("nan")], 0))
            continue
        times, in_database, cpu = [], [], []
        for _ in range(runs):
            with CaptureQueriesContext(connection) as queries:
                cpu_before = time.process_time() + backend_cpu(backend)
                started = time.perf_counter()
                fetch(client, page, url)
                times.append(time.perf_counter() - started)
                cpu.append(time.process_time() + backend_cpu(backend) - cpu_before)
            in_database.append(sum(float(q["time"]) for q in queries.captured_queries))
        result = Result(page, times, in_database, cpu, len(queries))
        results.append(result)
        print(
            f"{page.label:<60} {result.median * 1000:>6.0f} ms "
            f"{min(times) * 1000:>6.0f} ms {statistics.median(in_database) * 1000:>6.0f} ms "
            f"{statistics.median(cpu) * 1000:>6.0f} ms {result.queries:>8}"
            f"  {'PASS' if result.passed else 'FAIL'}",
            flush=True,
        )
        if explain:
            with connection.cursor() as cursor:
                for query in queries.captured_queries:
                    if float(query["time"]) > SLOW_QUERY and query["sql"].startswith("SELECT"):
                        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {query['sql']}")
                        print(f"\n{query['time']} s: {query['sql']}")
                        print("\n".join(row[0] for row in cursor.fetchall()), "\n")
    return results


def markdown(results: list[Result]) -> str:
    """The results as the table of docs/performance.md."""
    lines = [
        "| page | median | database | queries | < 0.5 s |",
        "|---|--:|--:|--:|:-:|",
    ]
    for result in results:
        lines.append(
            f"| {result.page.label} | {result.median * 1000:.0f} ms "
            f"| {statistics.median(result.in_database) * 1000:.0f} ms | {result.queries} "
            f"| {'PASS' if result.passed else '**FAIL**'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=URL)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reseed", action="store_true", help="seed again even if present")
    parser.add_argument("--explain", action="store_true", help="plans of the slow queries")
    parser.add_argument("--only", default="", help="only the pages whose label contains this")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    options = parser.parse_args()
    os.environ["BENCH_DATABASE_URL"] = options.database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings_admin"
    prepare(options.database_url, options.rows, options.reseed)
    pages = [page for page in PAGES if options.only.lower() in page.label.lower()]
    load = " ".join(f"{n:.1f}" for n in os.getloadavg())
    print(f"load average: {load}, {os.cpu_count()} CPUs, {options.runs} runs per page")
    results = measure(pages, options.runs, options.explain)
    failed = [r for r in results if not r.passed]
    load = " ".join(f"{n:.1f}" for n in os.getloadavg())
    passed = len(results) - len(failed)
    print(f"\n{passed} of {len(results)} pages under {GOAL} s; load average now {load}")
    if options.markdown:
        print("\n" + markdown(results))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
