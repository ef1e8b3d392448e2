"""Every environment variable the code reads is in the README's settings table (issue 20: 19
were missing), and the table names none the code no longer reads."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READS = re.compile(
    r"""(?:os\.environ(?:\.get)?\(|os\.environ\[|_env_bool\(|os\.getenv\()\s*["']([A-Z][A-Z0-9_]+)["']"""
)
# Names the code reads from the environment that are not settings of Clientdesk.
NOT_SETTINGS = {"DJANGO_SETTINGS_MODULE"}


def _read_by_code() -> set[str]:
    names = set()
    for path in (ROOT / "src").rglob("*.py"):
        names |= set(READS.findall(path.read_text()))
    names |= {"PROMETHEUS_MULTIPROC_DIR"}  # read through core/multiproc.py's ENV constant
    return names - NOT_SETTINGS


def _documented() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}


def test_every_variable_the_code_reads_is_in_the_readme():
    assert _read_by_code() - _documented() == set()


def test_the_readme_documents_no_variable_the_code_does_not_read():
    # GRANIAN_* are granian's own options, read by the server from the environment.
    granian = {name for name in _documented() if name.startswith("GRANIAN_")}
    assert _documented() - granian - _read_by_code() == set()
