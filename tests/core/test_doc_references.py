"""Every file the code, tests and documents point to is in the repository: a reader who
follows a reference finds the file (issue 15: the checker pointed to a CONTRACT.md that was not
in it)."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A document by name (CONTRACT.md), or a module by its path (audit/append_only.py). Template
# and static names are Django's to resolve (and every page test renders them).
REFERENCE = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\.md|(?:[\w-]+/)+[\w-]+\.py)\b")


def _tracked_text_files() -> list[Path]:
    names = subprocess.run(
        ["git", "ls-files", "src", "docs", "tests", "bench", "deploy", "README.md", "Makefile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / n for n in names if not n.endswith((".png", ".ico", ".woff2", ".sqlite3"))]


def _exists(reference: str, where: Path) -> bool:
    bases = [ROOT, ROOT / "docs", ROOT / "src", ROOT / "src" / "clientdesk", where.parent]
    return any((base / reference).exists() for base in bases)


def test_every_referenced_file_exists_in_the_repository():
    missing = []
    for path in _tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        for match in REFERENCE.finditer(text):
            if not _exists(match.group(1), path):
                line = text.count("\n", 0, match.start()) + 1
                missing.append(f"{path.relative_to(ROOT)}:{line}: {match.group(1)}")
    assert not missing, "references to files not in the repository:\n" + "\n".join(missing)
