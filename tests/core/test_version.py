"""One version: pyproject.toml, the latest release in CHANGELOG.md, the installed package and
the OpenAPI document's info.version must name the same release."""

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# A release heading of Keep a Changelog: "## [1.2.3] - 2026-12-07" ("[Unreleased]" is not one).
RELEASE = re.compile(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", re.M)


def _pyproject_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _latest_release() -> str:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## .*$", changelog, re.M)
    assert headings[0] == "## [Unreleased]", "CHANGELOG.md starts with its Unreleased section"
    releases = RELEASE.findall(changelog)
    assert releases, "CHANGELOG.md has no '## [x.y.z] - YYYY-MM-DD' release heading"
    # Every second-level heading is Unreleased or a release: a misspelt one would hide a release.
    assert len(releases) == len(headings) - 1, headings
    return releases[0][0]


def test_changelog_latest_release_is_the_pyproject_version():
    assert _latest_release() == _pyproject_version()


def test_the_installed_package_is_the_pyproject_version():
    # A stale install (pyproject changed, `pip install -e` not re-run) would serve another version.
    assert metadata.version("clientdesk") == _pyproject_version()


@pytest.mark.django_db
def test_openapi_info_version_is_the_release(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    assert response.json()["info"]["version"] == _pyproject_version()
