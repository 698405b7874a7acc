"""A wheel built from the repository serves the desk: the templates and static files of
the top-level web/ are inside it, and the installed package finds them (not the checkout)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.paths import ROOT

SOURCES = ("callpop", "web", "docs", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "settings.toml")

# Run in the unpacked wheel (a pure-Python wheel unpacked is what pip installs): the app
# renders the login page from the packaged templates and serves a packaged script.
CHECK = r"""
import asyncio, json, sys
from pathlib import Path
import callpop
from aiohttp.test_utils import TestClient, TestServer
from callpop.app import create_app
from callpop.settings_file import settings_from_mapping
from callpop.server.templating import WEB_ROOT

async def main():
    settings = settings_from_mapping({"database": {"url": "sqlite+aiosqlite:///" + sys.argv[1]}}, environ={})
    app = create_app(settings, start_ami=False)
    async with TestClient(TestServer(app)) as client:
        login = await client.get("/login")
        script = await client.get("/static/desk.js")
        print(json.dumps({"package": callpop.__file__, "web_root": str(WEB_ROOT),
                          "login": login.status, "login_form": 'name="password"' in await login.text(),
                          "script": script.status, "script_bytes": len(await script.read())}))

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built in-process from a copy of the sources as pip's backend call would."""
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_wheel({str(out)!r})"],
                   cwd=src, check=True, capture_output=True)
    (built,) = out.glob("callpop-*.whl")
    return built


def test_the_wheel_carries_the_pages_and_static_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in sorted((ROOT / "web").rglob("*")):
        if path.is_file():
            assert f"callpop/web/{path.relative_to(ROOT / 'web').as_posix()}" in names, path
    assert "callpop/store/migrations/versions/0001_initial.py" in names
    assert not any(n.startswith(("web/", "tests/")) for n in names)


def test_the_docs_the_unit_points_at_are_installed_with_the_wheel(wheel: Path) -> None:
    """deploy/callpop.service's Documentation= names a file under the venv (/opt/callpop):
    the wheel's data files put docs/*.md there."""
    unit = (ROOT / "deploy" / "callpop.service").read_text(encoding="utf-8")
    (doc,) = [line.split("file://", 1)[1] for line in unit.splitlines() if line.startswith("Documentation=file://")]
    in_venv = doc.removeprefix("/opt/callpop/")
    names = {n.split(".data/data/", 1)[1] for n in zipfile.ZipFile(wheel).namelist() if ".data/data/" in n}
    assert in_venv in names, sorted(names)
    assert {f"share/doc/callpop/{p.name}" for p in (ROOT / "docs").glob("*.md")} <= names


def test_the_installed_package_serves_the_desk_from_itself(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", CHECK, str(tmp_path / "callpop.db")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(result["package"]).is_relative_to(site)
    assert Path(result["web_root"]) == site / "callpop" / "web"
    assert (result["login"], result["login_form"]) == (200, True)
    assert result["script"] == 200 and result["script_bytes"] == (ROOT / "web" / "static" / "desk.js").stat().st_size
