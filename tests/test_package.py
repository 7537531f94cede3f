"""The distribution: what `python -m build` makes, and that it works once installed.

Runs in ``scripts/check package`` (marker ``package``), not in each database leg.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.package

# What a Django project needs from the package at run time.
SHIPPED = [
    "eduzz_webhooks/py.typed",
    "eduzz_webhooks/migrations/0001_initial.py",
    "eduzz_webhooks/locale/pt_BR/LC_MESSAGES/django.po",
    "eduzz_webhooks/locale/pt_BR/LC_MESSAGES/django.mo",
    "eduzz_webhooks/samples/nutror_file_downloaded.json",
    "eduzz_webhooks/samples/myeduzz_invoice_paid.json",
    "eduzz_webhooks/samples/ping.json",
    "eduzz_webhooks/templates/admin/eduzz_webhooks/filedownload/insight.html",
    "eduzz_webhooks/management/commands/eduzz_replay.py",
]


def run(*args: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, ROOT)
    return out


def test_sdist_and_wheel_pass_twine_check(dist: Path) -> None:
    files = sorted(dist.iterdir())
    assert sorted(f.suffix for f in files) == [".gz", ".whl"]
    assert "PASSED" in run(sys.executable, "-m", "twine", "check", "--strict", *files)


def test_wheel_contains_what_projects_need(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(SHIPPED) <= names
    assert not any(n.startswith(("tests/", "bench/", "example_project/")) for n in names)


def test_sdist_contains_the_package_docs_and_tests(dist: Path) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert set(SHIPPED) <= names
    assert {"README.md", "CHANGELOG.md", "LICENSE", "docs/index.rst"} <= names


def test_installed_wheel_runs_the_example_project(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    # A clean environment: no PYTHONPATH pointing at this checkout.
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, env=env)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", f"{wheel}[example]", env=env)
    project = tmp_path / "example_project"
    shutil.copytree(ROOT / "example_project", project, ignore=shutil.ignore_patterns("*.sqlite3"))
    # Imported from the installed wheel, not from this checkout (no PYTHONPATH in env).
    where = run(
        python, "-c", "import eduzz_webhooks; print(eduzz_webhooks.__file__)", cwd=project, env=env
    )
    assert where.startswith(str(venv))
    run(python, "manage.py", "check", "--fail-level", "WARNING", cwd=project, env=env)
    run(python, "manage.py", "migrate", "--no-input", cwd=project, env=env)
    run(python, "manage.py", "makemigrations", "--check", "--dry-run", cwd=project, env=env)
    help_text = run(python, "manage.py", "help", "eduzz_send_event", cwd=project, env=env)
    assert "--url" in help_text
