"""Every file the code, tests and documents point to is in the repository: a reader who
follows a reference finds the file (issue 15: the audit checker pointed to a contract document
that was never in the repository)."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A document by name (AUDIT.md), or a module by its path (audit/append_only.py). Template and
# static names are Django's to resolve (and every page test renders them).
REFERENCE = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\.md|(?:[\w-]+/)+[\w-]+\.py)\b")


def _repository_files() -> list[str]:
    return subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


def _exists(reference: str, where: Path, files: set[str]) -> bool:
    """At the repository's root, under docs/ or src/, beside the file, or (for a path with a
    folder, such as an app's `services/queue.py`) at the end of a path in the repository."""
    bases = [ROOT, ROOT / "docs", ROOT / "src", ROOT / "src" / "clientdesk", where.parent]
    if any((base / reference).is_file() for base in bases):
        return True
    return "/" in reference and any(f.endswith("/" + reference) for f in files)


def test_every_referenced_file_exists_in_the_repository():
    files = _repository_files()
    known = set(files)
    missing = []
    for name in files:
        if not name.startswith(("src/", "docs/", "tests/", "bench/", "deploy/", "README")):
            continue
        try:
            text = (ROOT / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        for match in REFERENCE.finditer(text):
            if not _exists(match.group(1), ROOT / name, known):
                line = text.count("\n", 0, match.start()) + 1
                missing.append(f"{name}:{line}: {match.group(1)}")
    assert not missing, "references to files not in the repository:\n" + "\n".join(missing)
