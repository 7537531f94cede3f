"""End to end: the example project in headless Chromium, as a producer uses it.

Runs in ``scripts/check browser`` (marker ``e2e``): Debian's ``chromium`` driven by
Playwright. Screenshots of the key pages land in ``tests/e2e_screenshots/``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.utils import translation

from eduzz_webhooks.models import FileDownload
from eduzz_webhooks.samples import sample_payload

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "example_project"
SHOTS = Path(__file__).resolve().parent / "e2e_screenshots"
SECRET = "e2e-secret-0123456789abcdef"
CHROMIUM = os.environ.get("EDUZZ_CHROMIUM", "/usr/bin/chromium")


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
        "PYTHONPATH": str(PROJECT),
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
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
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
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
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
