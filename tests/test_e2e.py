"""End to end: the example project in headless Chromium, as a producer uses it.

Runs in ``scripts/check browser`` (marker ``e2e``): Debian's ``chromium`` driven by
Playwright. Screenshots of the key pages land in ``tests/e2e_screenshots/``, those of
the laptop and wide screen tour named ``<page>-<width>x<height>-<language>.png``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.apps import apps
from django.utils import translation
from django.utils.text import capfirst
from django.utils.translation import gettext

from eduzz_webhooks.admin.export import COLUMNS
from eduzz_webhooks.models import FileDownload, WebhookEvent
from eduzz_webhooks.samples import sample_payload

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "example_project"
SHOTS = Path(__file__).resolve().parent / "e2e_screenshots"
SECRET = "e2e-secret-0123456789abcdef"
CHROMIUM = os.environ.get("EDUZZ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIME_ZONE = "America/Sao_Paulo"  # the example project's
SCREENS = [(1366, 768), (1920, 1080)]  # a laptop, a wide screen
LANGUAGES = [("en", "en-US"), ("pt-br", "pt-BR")]  # Django's code, the browser's locale
LISTS = ["webhookevent", "filedownload", "learner", "course", "lesson", "producer"]
# How a list fits: the page and the table need no horizontal scrolling (the admin
# scrolls a wide table inside .results), and each status badge is a single line.
FIT = """() => {
    const results = document.querySelector("#changelist .results");
    return {
        page: [document.documentElement.scrollWidth, window.innerWidth],
        table: results ? [results.scrollWidth, results.clientWidth] : null,
        badges: [...document.querySelectorAll("#result_list .eduzz-status")].map(badge => {
            const size = parseFloat(getComputedStyle(badge).fontSize);
            return badge.getClientRects().length === 1
                && badge.getBoundingClientRect().height < 2 * size;
        }),
    };
}"""


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """The example project on a fresh SQLite database, served on a free port."""
    tmp = tmp_path_factory.mktemp("e2e")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example.settings",
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "EDUZZ_SECRET": SECRET,
        "DJANGO_SUPERUSER_PASSWORD": "admin",
        # This checkout's package first, whatever the virtual environment has installed.
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(PROJECT)]),
    }
    manage(env, "migrate", "--no-input")
    manage(
        env, "createsuperuser", "--no-input", "--username", "admin", "--email", "admin@example.com"
    )
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/admin/login/", timeout=1)  # noqa: S310
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("the example project did not start")
        yield url, env
    finally:
        process.terminate()
        process.wait(timeout=10)


def send(env: dict[str, str], url: str, tmp: Path, payload: dict[str, object]) -> None:
    path = tmp / f"{payload['id']}.json"
    path.write_text(json.dumps(payload), encoding="utf-8")
    out = manage(env, "eduzz_send_event", str(path), "--url", f"{url}/eduzz/", "--keep-id")
    assert "200 " in out


def test_a_producer_finds_exports_and_replays_downloads(
    server: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, env = server
    SHOTS.mkdir(exist_ok=True)
    downloads = [
        ("ana@example.com", "Ana Souza", "curso-python", "Python para Todos", "10", "Listas"),
        ("bruno@example.com", "Bruno Lima", "curso-django", "Django Profissional", "20", "ORM"),
        ("carla@example.com", "Carla Dias", "curso-django", "Django Profissional", "21", "Admin"),
    ]
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for email, name, course, title, lesson, lesson_title in downloads:
        send(
            env,
            url,
            tmp_path,
            sample_payload(
                "nutror.file_downloaded",
                learner={"email": email, "name": name},
                course={"hash": course, "title": title},
                lesson={"id": lesson, "title": lesson_title},
                createdAt=now,
            ),
        )
    # One delivery whose receivers failed (say, the CRM was down): left failed, to replay.
    manage(
        env,
        "shell",
        "-c",
        "from eduzz_webhooks.models import WebhookEvent as E; "
        "E.objects.filter(file_download__learner__email='carla@example.com')"
        ".update(status='failed', error='Receiver crm.sync raised: ConnectionError')",
    )

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(accept_downloads=True, locale="en-US").new_page()

        page.goto(f"{url}/admin/login/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "admin")
        page.click("input[type=submit]")
        expect(page.locator("#site-name")).to_be_visible()

        # Find a learner's download by search.
        page.goto(f"{url}/admin/eduzz_webhooks/filedownload/")
        expect(page.locator("#result_list tbody tr")).to_have_count(3)
        page.fill("#searchbar", "ana@example.com")
        page.press("#searchbar", "Enter")
        rows = page.locator("#result_list tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("ana@example.com")
        page.screenshot(path=SHOTS / "downloads-search.png", full_page=True)

        # Filter by course.
        page.goto(f"{url}/admin/eduzz_webhooks/filedownload/")
        page.locator("#changelist-filter a", has_text="Django Profissional").click()
        expect(page.locator("#result_list tbody tr")).to_have_count(2)
        page.screenshot(path=SHOTS / "downloads-by-course.png", full_page=True)

        # Export what the list shows as CSV.
        with page.expect_download() as info:
            page.locator("a[href*='/filedownload/export/']").click()
        rows_csv = list(csv.reader(io.StringIO(Path(info.value.path()).read_text("utf-8"))))
        assert len(rows_csv) == 3  # the header and the course's two downloads
        assert {r[1] for r in rows_csv[1:]} == {"bruno@example.com", "carla@example.com"}

        # The insight page.
        page.goto(f"{url}/admin/eduzz_webhooks/filedownload/")
        page.locator("a[href*='/filedownload/insight/']").click()
        expect(page.locator("svg[aria-labelledby=insight-chart-title]")).to_be_visible()
        expect(page.locator("#insight-top-courses")).to_contain_text("Django Profissional")
        page.screenshot(path=SHOTS / "insight.png", full_page=True)

        # Replay the failed event.
        page.goto(f"{url}/admin/eduzz_webhooks/webhookevent/?status__exact=failed")
        expect(page.locator("#result_list tbody tr")).to_have_count(1)
        page.screenshot(path=SHOTS / "events-failed.png", full_page=True)
        page.check("#action-toggle")
        page.select_option("select[name=action]", "replay")
        page.click("button[name=index]")
        expect(page.locator("ul.messagelist")).to_contain_text("Replay of 1 event: processed.")
        page.goto(f"{url}/admin/eduzz_webhooks/webhookevent/?status__exact=failed")
        expect(page.locator("#result_list tbody tr")).to_have_count(0)

        # Switch the admin to Portuguese.
        page.goto(f"{url}/admin/")
        page.select_option("#language-select", "pt-br")
        page.wait_for_load_state()
        with translation.override("pt-br"):
            plural = str(FileDownload._meta.verbose_name_plural)
            singular = str(FileDownload._meta.verbose_name)
        assert plural != "file downloads"  # the catalog is shipped and compiled
        expect(page.locator("#content")).to_contain_text(plural[0].upper() + plural[1:])
        page.goto(f"{url}/admin/eduzz_webhooks/filedownload/")
        expect(page.locator("#content h1")).to_contain_text(singular)
        page.screenshot(path=SHOTS / "downloads-pt-br.png", full_page=True)
        browser.close()


def plural(model: str) -> str:
    """The model's name in the plural, as the admin writes it (in the active language)."""
    return str(capfirst(apps.get_model("eduzz_webhooks", model)._meta.verbose_name_plural))


def log_in(page: Any, url: str) -> None:
    page.goto(f"{url}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin")
    page.click("input[type=submit]")
    page.wait_for_url(f"{url}/admin/")


def test_every_page_reads_well_on_a_laptop_and_a_wide_screen_in_both_languages(
    server: tuple[str, dict[str, str]],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, env = server
    SHOTS.mkdir(exist_ok=True)
    # A documented sample, which eduzz_send_event dates now: the insight page's default
    # period (the last 30 days) has it.
    out = manage(env, "eduzz_send_event", "nutror.file_downloaded", "--url", f"{url}/eduzz/")
    assert "200 " in out
    learner = sample_payload("nutror.file_downloaded")["data"]["learner"]
    fits: dict[str, object] = {}

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for language, locale in LANGUAGES:
            with translation.override(language):
                words = {
                    **{
                        model: str(
                            capfirst(
                                apps.get_model("eduzz_webhooks", model)._meta.verbose_name_plural
                            )
                        )
                        for model in LISTS
                    },
                    "processed": str(WebhookEvent.Status.PROCESSED.label),
                    "insight": gettext("Downloads insight"),
                    "top learners": gettext("Top learners"),
                    "per day": gettext("Per day"),
                    "history": gettext("See them all in the download list"),
                    "csv date": f"{COLUMNS[0][1]} ({TIME_ZONE})",
                }
            context = browser.new_context(
                accept_downloads=True, locale=locale, viewport={"width": 1366, "height": 768}
            )
            page = context.new_page()
            log_in(page, url)
            expect(page.locator("html")).to_have_attribute("lang", language)
            for width, height in SCREENS:
                page.set_viewport_size({"width": width, "height": height})

                def shot(name: str, size: str = f"{width}x{height}-{language}") -> None:
                    page.screenshot(path=SHOTS / f"{name}-{size}.png", full_page=True)  # noqa: B023

                for model in LISTS:
                    page.goto(f"{url}/admin/eduzz_webhooks/{model}/")
                    expect(page.locator("#result_list tbody tr").first).to_be_visible()
                    fit = page.evaluate(FIT)
                    fits[f"{model} {width}x{height} {language}"] = fit
                    page_width, window = fit["page"]
                    table, room = fit["table"]
                    assert page_width <= window, (model, width, language, fit)
                    assert table <= room, (model, width, language, fit)
                    assert all(fit["badges"]), (model, width, language, fit)
                    shot(model)
                    expect(page.locator(".breadcrumbs")).to_contain_text(words[model])
                    if model == "webhookevent":
                        assert fit["badges"]  # the list has statuses to measure
                        expect(page.locator("#result_list")).to_contain_text(words["processed"])

                # A download's page: its title dated in the site's time zone.
                page.goto(f"{url}/admin/eduzz_webhooks/filedownload/?q={learner['email']}")
                page.locator("#result_list tbody tr a").first.click()
                expect(page.locator("#content h2")).to_contain_text(learner["name"])
                title = page.locator("#content h2").inner_text()
                local = dt.datetime.now(ZoneInfo(TIME_ZONE))
                assert f"{local:%Y-%m-%d}" in title or (
                    f"{local - dt.timedelta(minutes=5):%Y-%m-%d}" in title
                ), title
                shot("download")

                # The insight page: a chart with both axes, a <title> per day, the learners' line.
                page.goto(f"{url}/admin/eduzz_webhooks/filedownload/insight/")
                expect(page.locator("#content h1")).to_contain_text(words["insight"])
                chart = page.locator("svg[aria-labelledby=insight-chart-title]")
                expect(chart).to_be_visible()
                expect(chart.locator(".insight-axis-title").first).to_have_text(words["per day"])
                expect(chart.locator(".insight-axis-title").last).to_contain_text(TIME_ZONE)
                assert chart.locator(".insight-dates text").count() >= 2  # the date axis
                assert chart.locator(".insight-value").count() >= 2  # the value axis
                days = chart.locator("a.insight-day")
                assert days.count() == 30
                assert chart.locator("a.insight-day > title").count() == 30
                assert all(days.nth(n).locator("title").text_content() for n in (0, 29))
                expect(chart.locator("polyline.insight-learners")).to_have_count(1)
                expect(page.locator("select[name=course] option")).not_to_have_count(1)
                top = page.locator("#insight-top-learners")
                expect(top.locator("caption")).to_have_text(words["top learners"])
                shot("insight")

                # From the top learners to the learner's page: their download history.
                top.locator("a", has_text=learner["name"]).click()
                expect(page).to_have_url(re.compile(r"/admin/eduzz_webhooks/learner/\d+/change/"))
                expect(page.locator("#content")).to_contain_text(learner["email"])
                expect(page.locator("#content")).to_contain_text(words["history"])
                shot("learner")

                # The CSV export: its date column names the time zone of its dates.
                page.goto(f"{url}/admin/eduzz_webhooks/filedownload/")
                with page.expect_download() as info:
                    page.locator("a[href*='/filedownload/export/']").click()
                text = Path(info.value.path()).read_text("utf-8")
                header = next(csv.reader(io.StringIO(text)))
                assert header[0] == words["csv date"], header
            context.close()
        browser.close()
    print(json.dumps(fits, indent=1))  # the measurements, with pytest -s
