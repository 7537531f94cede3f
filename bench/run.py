"""The benchmark: the receivers, PostgreSQL and SQLite, through gunicorn under concurrent load.

Run it with ``./scripts/bench`` (``--quick`` for a smoke run); ``--help``
lists the knobs. For each database it measures, from an empty database each
time and with the same deliveries:

1. floor A, a bare view that reads the body;
2. floor B, the same plus one insert of the raw body;
3. the receiver a user would write by hand (``bench.views.naive``);
4. this app, synchronous;
5. this app in task mode: each delivery writes its event and its
   ``process_event`` task in one transaction (the outbox); no worker runs;
6. the doorbell, the other shape task mode could have taken
   (``bench.views.doorbell``): the event inserted on its own, then one read of
   a shared row;
7. on PostgreSQL, 4 and 5 again with Django's ``server_side_binding``;

then this app again, synchronous, over a million existing downloads. Every
scenario runs in several rounds (``--rounds``). The table shows each one's
fastest round. A comparison of two receivers on one database runs them back
to back in every round and takes the median of the rounds' ratios, so that
the machine's drifts in speed (a shared host's) cancel out. A full run
writes its table into docs/performance.md; every run writes Markdown and JSON
into bench/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from . import db, harness, report, seed

POSTGRESQL, SQLITE = "PostgreSQL", "SQLite"


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    path: str
    background: bool = False  # the app's PROCESS_IN_BACKGROUND
    server_side_binding: bool = False  # Django's option of that name (PostgreSQL only)
    databases: tuple[str, ...] = (POSTGRESQL, SQLITE)


SSB = "server_side_binding"
SCENARIOS = [
    Scenario("floor_a", "Floor A: bare view, reads the body", "/floor-a/"),
    Scenario("floor_b", "Floor B: + one insert of the raw body", "/floor-b/"),
    Scenario("naive", "Naive: DRF serializer + get_or_create chain", "/naive/"),
    Scenario("app_sync", "This app, synchronous", "/eduzz/"),
    Scenario(
        "app_sync_ssb",
        f"This app, synchronous, `{SSB}`",
        "/eduzz/",
        server_side_binding=True,
        databases=(POSTGRESQL,),
    ),
    Scenario(
        "app_task",
        "This app, task mode (outbox: event + task, one commit)",
        "/eduzz/",
        background=True,
    ),
    Scenario(
        "app_task_ssb",
        f"This app, task mode (outbox), `{SSB}`",
        "/eduzz/",
        background=True,
        server_side_binding=True,
        databases=(POSTGRESQL,),
    ),
    Scenario("doorbell", "Doorbell: event autocommitted, then one shared row read", "/doorbell/"),
]
SEEDED = "app_sync_seeded"
# The order the scenarios run in each round: the two sides of each comparison back to back
# (naive | synchronous | synchronous with server-side binding; floor B | outbox | doorbell;
# outbox with server-side binding after them, one away from the outbox).
RUN_ORDER = [
    "floor_a",
    "naive",
    "app_sync",
    "app_sync_ssb",
    "floor_b",
    "app_task",
    "doorbell",
    "app_task_ssb",
]


def seeded_scenario(rows: int) -> Scenario:
    return Scenario(SEEDED, f"This app, synchronous, {rows:,} existing downloads", "/eduzz/")


# Where the deliveries come from, and the seeded downloads too.
CATALOG = harness.Catalog(producers=100, courses=1000, lessons_per_course=20, learners=200_000)

FULL = {"deliveries": 3000, "warmup": 300, "seed_rows": 1_000_000, "rounds": 5}
QUICK = {"deliveries": 300, "warmup": 60, "seed_rows": 20_000, "rounds": 1}


@dataclass
class Measure:
    database: str
    scenario: str
    label: str
    deliveries: int
    per_second: float
    p50_ms: float
    p99_ms: float
    statements: float
    commits: float
    statuses: dict[str, int]
    problems: list[str]
    rounds: list[float] = field(default_factory=list)  # deliveries/s of every round


class Target(Protocol):
    name: str
    url: str

    def setup(self) -> None: ...
    def reset(self) -> None: ...
    def seed(self, rows: int) -> None: ...
    def before(self) -> int: ...
    def commits(self, before: int, stats: Counter[str]) -> int: ...
    def cleanup(self) -> None: ...


class Postgres:
    name = POSTGRESQL

    def __init__(self, url: str) -> None:
        self.url = url

    def setup(self) -> None:
        db.recreate(self.url)
        db.migrate(self.url)

    def reset(self) -> None:
        db.truncate(self.url)

    def seed(self, rows: int) -> None:
        seed.seed_postgres(self.url, CATALOG, rows)

    def before(self) -> int:
        return db.settle(self.url)

    def commits(self, before: int, stats: Counter[str]) -> int:
        # Every transaction the database committed while the server ran,
        # autocommitted statements included: pg_stat_database, not a guess.
        return db.settle(self.url) - before

    def cleanup(self) -> None:
        db.drop(self.url)


class Sqlite:
    name = SQLITE

    def __init__(self, directory: Path) -> None:
        self.path = directory / "eduzz_bench.sqlite3"
        self.template = directory / "eduzz_bench_template.sqlite3"
        self.url = f"sqlite:///{self.path}"

    def setup(self) -> None:
        db.migrate(f"sqlite:///{self.template}")
        connection = sqlite3.connect(self.template)
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.close()

    def reset(self) -> None:
        for suffix in ("-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(self.template, self.path)

    def seed(self, rows: int) -> None:
        seed.seed_sqlite(str(self.path), CATALOG, rows)

    def before(self) -> int:
        return 0

    def commits(self, before: int, stats: Counter[str]) -> int:
        # SQLite has no commit counter: each BEGIN Django sent opened one
        # transaction, and each statement outside one was a transaction itself.
        return stats["begins"] + stats["autocommit"]

    def cleanup(self) -> None:
        for path in self.path.parent.glob("eduzz_bench*"):
            path.unlink()


def measure(
    target: Target,
    scenario: Scenario,
    deliveries: list[harness.Delivery],
    warmup: list[harness.Delivery],
    options: argparse.Namespace,
) -> Measure:
    before = target.before()
    config = harness.ServerConfig(
        target.url, options.workers, options.threads, background=scenario.background
    )
    binding = "1" if scenario.server_side_binding else "0"
    with _environment(BENCH_SERVER_SIDE_BINDING=binding), harness.Server(config) as server:
        result = harness.fire(
            server.port,
            scenario.path,
            deliveries,
            warmup=warmup,
            concurrency=options.concurrency,
            processes=options.client_processes,
        )
    stats = server.stats()
    posts = stats["posts"]
    problems = []
    statuses = {str(k): v for k, v in sorted((result.statuses + result.warmup_statuses).items())}
    if set(statuses) != {"200"}:
        problems.append(f"answers other than 200: {statuses}")
    if result.timed_out or result.sent != len(deliveries):
        problems.append(f"only {result.sent} of {len(deliveries)} deliveries were measured")
    if posts != len(deliveries) + len(warmup):
        problems.append(f"the workers counted {posts} deliveries")
    if problems:
        problems.append(f"gunicorn log:\n{server.log_tail()}")
    return Measure(
        database=target.name,
        scenario=scenario.key,
        label=scenario.label,
        deliveries=result.sent,
        per_second=result.per_second,
        p50_ms=result.percentile(0.50) * 1000,
        p99_ms=result.percentile(0.99) * 1000,
        statements=stats["statements"] / posts if posts else 0.0,
        commits=target.commits(before, stats) / posts if posts else 0.0,
        statuses=statuses,
        problems=problems,
    )


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for what starts inside (the gunicorn server inherits them)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


Batch = tuple[list[harness.Delivery], list[harness.Delivery]]  # warm-up, timed


def run_database(
    target: Target, batches: list[Batch], options: argparse.Namespace
) -> list[Measure]:
    """Every scenario once per batch (round), best round kept; then the seeded scenario."""
    rounds: dict[str, list[Measure]] = {}
    target.setup()
    try:
        for warmup, deliveries in batches:
            for scenario in sorted(SCENARIOS, key=lambda s: RUN_ORDER.index(s.key)):
                if scenario.key not in options.scenarios or target.name not in scenario.databases:
                    continue
                target.reset()
                m = measure(target, scenario, deliveries, warmup, options)
                rounds.setdefault(scenario.key, []).append(m)
                _progress(m)
        if SEEDED in options.scenarios:
            target.reset()
            started = time.monotonic()
            target.seed(options.seed_rows)
            print(
                f"  seeded {options.seed_rows:,} downloads in {time.monotonic() - started:.0f} s",
                flush=True,
            )
            # Each round its own events, so that none is a duplicate of a previous round's.
            for warmup, deliveries in batches:
                seeded = seeded_scenario(options.seed_rows)
                m = measure(target, seeded, deliveries, warmup, options)
                rounds.setdefault(SEEDED, []).append(m)
                _progress(m)
    finally:
        target.cleanup()
    order = [*(s.key for s in SCENARIOS), SEEDED]  # the table's order
    return [_best(rounds[key]) for key in order if key in rounds]


def _best(measures: list[Measure]) -> Measure:
    """The fastest round: other work on the machine only ever slows a round down."""
    best = max(measures, key=lambda m: m.per_second)
    best.rounds = [m.per_second for m in measures]
    best.problems = [p for m in measures for p in m.problems]
    return best


def _progress(m: Measure) -> None:
    print(
        f"  {m.database:10} {m.scenario:16} {m.per_second:8.1f}/s  p50 {m.p50_ms:7.1f} ms  "
        f"p99 {m.p99_ms:7.1f} ms  {m.statements:5.2f} statements  {m.commits:5.2f} commits",
        flush=True,
    )
    for problem in m.problems:
        print(f"    PROBLEM: {problem}", flush=True)


# -- goals and report --------------------------------------------------------------------


@dataclass
class Goal:
    database: str
    text: str
    value: str
    met: bool


def paired(a: Measure, b: Measure) -> tuple[float, str]:
    """The median of ``a``'s throughput over ``b``'s in each round (they ran back to back)."""
    ratios = [x / y for x, y in zip(a.rounds, b.rounds, strict=True)]
    return statistics.median(ratios), " / ".join(f"{r:.2f}" for r in ratios)


# The goals. Commits are PostgreSQL's count, which includes each connection's
# set-up and autovacuum's transactions (0.01-0.02 a delivery in a full run,
# more in a quick one): task mode's one commit is checked against floor B's,
# which commits once per delivery by construction.
SYNC_OVER_NAIVE = 1.0
TASK_OVER_FLOOR_B = 0.7
TASK_STATEMENTS = 2
TASK_COMMITS = 1
COMMIT_SLACK = 0.02
SEEDED_SLOWDOWN = 1.2


def goals(results: list[Measure], seed_rows: int) -> list[Goal]:
    checked = []
    for database in dict.fromkeys(m.database for m in results):
        by = {m.scenario: m for m in results if m.database == database}
        valid = not any(m.problems for m in by.values())
        # Each goal compares two scenarios; --scenarios may have left one out.
        if {"app_sync", "naive"} <= by.keys():
            ratio, per_round = paired(by["app_sync"], by["naive"])
            checked.append(
                Goal(
                    database,
                    "this app, synchronous, at least as fast as the naive receiver",
                    f"{ratio:.2f}x naive (median of the rounds' {per_round})",
                    valid and ratio >= SYNC_OVER_NAIVE,
                )
            )
        if database == POSTGRESQL and {"app_task", "floor_b"} <= by.keys():
            task, floor_b = by["app_task"], by["floor_b"]
            ratio, per_round = paired(task, floor_b)
            cheap = (
                round(task.statements, 2) <= TASK_STATEMENTS
                and task.commits - (floor_b.commits - 1) <= TASK_COMMITS + COMMIT_SLACK
            )
            checked.append(
                Goal(
                    database,
                    f"task mode (outbox) at least {TASK_OVER_FLOOR_B}x floor B's throughput,"
                    f" with at most {TASK_STATEMENTS} statements and {TASK_COMMITS} commit"
                    " per delivery",
                    f"{ratio:.2f}x floor B (median of the rounds' {per_round});"
                    f" {task.statements:.2f} statements and {task.commits:.2f} commits per"
                    f" delivery (floor B's one insert: {floor_b.commits:.2f} commits)",
                    valid and ratio >= TASK_OVER_FLOOR_B and cheap,
                )
            )
        if {"app_sync", SEEDED} <= by.keys():
            app, seeded = by["app_sync"], by[SEEDED]
            slowdown = app.per_second / seeded.per_second
            checked.append(
                Goal(
                    database,
                    f"cost per delivery with {seed_rows:,} downloads within"
                    f" {SEEDED_SLOWDOWN}x of empty",
                    f"{slowdown:.2f}x empty",
                    valid and slowdown <= SEEDED_SLOWDOWN,
                )
            )
    return checked


@dataclass
class Comparison:
    database: str
    text: str
    value: str


# What the design was chosen among, and what a setting changes: (a, b, what a / b says).
COMPARISONS = [
    ("doorbell", "app_task", "doorbell over outbox"),
    ("app_sync_ssb", "app_sync", f"synchronous with `{SSB}` over without"),
    ("app_task_ssb", "app_task", f"task mode (outbox) with `{SSB}` over without"),
    ("app_task", "floor_b", "task mode (outbox) over floor B"),
]


def comparisons(results: list[Measure]) -> list[Comparison]:
    """Back-to-back ratios that are no goal: medians of the rounds' ratios, as the goals."""
    found = []
    for database in dict.fromkeys(m.database for m in results):
        by = {m.scenario: m for m in results if m.database == database}
        for a, b, text in COMPARISONS:
            if not {a, b} <= by.keys() or (database, a, b) == (POSTGRESQL, "app_task", "floor_b"):
                continue  # a scenario left out; or a goal already
            ratio, per_round = paired(by[a], by[b])
            found.append(
                Comparison(database, text, f"{ratio:.2f}x (median of the rounds' {per_round})")
            )
    return found


def markdown(
    results: list[Measure],
    checked: list[Goal],
    compared: list[Comparison],
    options: argparse.Namespace,
    info: dict[str, str],
    command: str,
) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} with `{command}`"
        + (" (a quick smoke run: too small to judge by)" if options.quick else "")
        + ".",
        "",
        f"- Machine: {info['cores']} cores ({info['cpu']}), {info['memory']} memory, {info['os']};"
        f" load average {info['load_before']} before the run, {info['load_after']} after"
        " (1 / 5 / 15 min; anything well above the core count means other work shared the CPU).",
        f"- Python {info['python']}, Django {info['django']}, PostgreSQL {info['postgresql']},"
        f" SQLite {info['sqlite']}, gunicorn {info['gunicorn']}.",
        f"- gunicorn: {options.workers} workers x {options.threads} threads (gthread, keep-alive);"
        f" load: {options.concurrency} connections from {options.client_processes} client"
        " processes on the same machine.",
        f"- Per scenario and round: {options.warmup} warm-up deliveries, then"
        f" {options.deliveries} timed ones, all distinct `nutror.file_downloaded` events spread"
        " over 100 producers, 1,000 courses x 20 lessons and 200,000 learners; each scenario"
        f" starts from an empty database. {_rounds(options.rounds)} of every scenario; the"
        " table shows the fastest (other work on the machine only slows a round down), the last"
        " column every round. The goals and comparisons of two receivers on one database ran"
        " them back to back in each round and take the median of the rounds' ratios; the"
        " million-row goal compares fastest rounds. Task mode: no worker runs during the"
        f" measure. `{SSB}`: Django's PostgreSQL option, on for that scenario only.",
        "",
        "| database | receiver | deliveries/s | x floor B | p50 ms | p99 ms | statements"
        " / delivery | commits / delivery | rounds, deliveries/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in results:
        floor_b = next(
            (r for r in results if r.database == m.database and r.scenario == "floor_b"), None
        )
        ratio = f"{m.per_second / floor_b.per_second:.2f}" if floor_b else "-"
        lines.append(
            f"| {m.database} | {m.label} | {m.per_second:.0f} |"
            f" {ratio} | {m.p50_ms:.1f} | {m.p99_ms:.1f} |"
            f" {m.statements:.2f} | {m.commits:.2f} |"
            f" {' / '.join(f'{r:.0f}' for r in m.rounds)} |"
        )
    lines += ["", "Goals:", ""]
    for goal in checked:
        lines.append(
            f"- {'PASS' if goal.met else 'FAIL'} ({goal.database}) {goal.text}: {goal.value}"
        )
    if compared:
        lines += ["", "Comparisons (no goal):", ""]
        lines += [f"- ({c.database}) {c.text}: {c.value}" for c in compared]
    problems = [(m, p) for m in results for p in m.problems]
    if problems:
        lines += ["", "Problems (the figures above are not valid):", ""]
        lines += [f"- {m.database} {m.scenario}: {p.splitlines()[0]}" for m, p in problems]
    return "\n".join(lines)


def _rounds(count: int) -> str:
    return "1 round" if count == 1 else f"{count} rounds"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~1 minute smoke run")
    parser.add_argument("--deliveries", type=int, help="timed deliveries per scenario")
    parser.add_argument("--warmup", type=int, help="untimed deliveries before them")
    parser.add_argument("--seed-rows", type=int, help="existing downloads for the last scenario")
    parser.add_argument(
        "--rounds", type=int, help="runs of every scenario; goals take the median ratio"
    )
    cores = os.cpu_count() or 2
    parser.add_argument("--workers", type=int, default=2 * cores, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--concurrency", type=int, default=16, help="connections in flight")
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/eduzz_bench"
        ),
        help="database to create, use and drop (default: %(default)s)",
    )
    parser.add_argument(
        "--databases", default="postgresql,sqlite", help="comma-separated: postgresql, sqlite"
    )
    parser.add_argument(
        "--docs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write the table into docs/performance.md (default: yes unless --quick)",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join([*(s.key for s in SCENARIOS), SEEDED]),
        help="comma-separated subset to run (default: all, %(default)s);"
        " a goal is checked only when both its scenarios ran",
    )
    options = parser.parse_args(argv)
    options.scenarios = options.scenarios.split(",")
    unknown = set(options.scenarios) - {s.key for s in SCENARIOS} - {SEEDED}
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    sizes = QUICK if options.quick else FULL
    for key, value in sizes.items():
        if getattr(options, key) is None:
            setattr(options, key, value)
    if options.docs is None:
        # The docs show a full run of every scenario.
        options.docs = not options.quick and parser.get_default("scenarios") == ",".join(
            options.scenarios
        )
    return options


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    options = parse_args(argv)
    command = " ".join(["./scripts/bench", *argv])
    rng = random.Random(2024)
    size = options.warmup + options.deliveries
    events = harness.file_downloaded_events(CATALOG, rng, size * options.rounds)
    signed = [harness.signed(event) for event in events]
    batches = [
        (
            signed[r * size : r * size + options.warmup],
            signed[r * size + options.warmup : (r + 1) * size],
        )
        for r in range(options.rounds)
    ]
    info = report.machine()
    info["load_before"] = report.load_average()
    info["postgresql"] = "-"
    results: list[Measure] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="eduzz-bench-sqlite-") as directory:
        for database in options.databases.split(","):
            target: Target
            if database == "postgresql":
                info["postgresql"] = db.server_version(options.postgres_url)
                target = Postgres(options.postgres_url)
            elif database == "sqlite":
                target = Sqlite(Path(directory))
            else:
                print(f"Unknown database {database!r}.", file=sys.stderr)
                return 2
            print(f"{target.name}:", flush=True)
            results += run_database(target, batches, options)
    info["load_after"] = report.load_average()
    checked = goals(results, options.seed_rows)
    compared = comparisons(results)
    text = markdown(results, checked, compared, options, info, command)
    print()
    print(text)
    print(f"\n(total {time.monotonic() - started:.0f} s)")
    report.RESULTS_DIR.mkdir(exist_ok=True)
    name = "bench-quick" if options.quick else "bench"
    (report.RESULTS_DIR / f"{name}.md").write_text(text + "\n")
    (report.RESULTS_DIR / f"{name}.json").write_text(
        json.dumps(
            {
                "info": info,
                "options": vars(options),
                "results": [asdict(m) for m in results],
                "goals": [asdict(g) for g in checked],
                "comparisons": [asdict(c) for c in compared],
            },
            indent=2,
        )
    )
    if options.docs:
        report.write_section("bench", text)
        print(f"Written into {report.PERFORMANCE_DOC.relative_to(report.ROOT)}.")
    failed = any(m.problems for m in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
