"""docs/AUDIT.md's commands, run as written (bash, openssl, curl, python3 and
docs/audit/rfc9162.py) against a real server: an auditor's steps must work."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import transaction

from clientdesk.accounts.services import api_token_create
from clientdesk.audit.append_only import ledger_maintenance
from clientdesk.audit.models import AuditRecord
from clientdesk.audit.services import audit_append, audit_checkpoint_create

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "AUDIT.md").read_text()
CHECKER = ROOT / "docs" / "audit" / "rfc9162.py"


def _block(name: str) -> str:
    match = re.search(rf"```sh {name}\n(.*?)```", DOC, re.S)
    assert match, f"docs/AUDIT.md lost its {name} block"
    return "\n".join(line.strip() for line in match.group(1).splitlines())


def _run(name: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-eo", "pipefail", "-c", _block(name)],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def _append(n: int) -> None:
    for i in range(n):
        with transaction.atomic():
            audit_append(
                actor=None,
                action="test.event",
                object_type="thing",
                object_id=i,
                created_at=datetime(2026, 11, 5, tzinfo=UTC),
                data={"n": i},
            )


@pytest.mark.skipif(
    not shutil.which("openssl") or not shutil.which("curl"),
    reason="openssl and curl are the auditor's tools here",
)
def test_the_documented_steps_work_and_catch_a_removed_record(
    tmp_path, make_user, make_client, agent, asgi_server
):
    (tmp_path / "docs" / "audit").mkdir(parents=True)
    shutil.copy(ROOT / "docs" / "audit" / "rfc9162.py", tmp_path / "docs" / "audit")
    _append(5)
    call_command(
        "export_messages",
        "--format",
        "csv",
        "--since",
        "2026-11-01",
        "--until",
        "2026-12-01",
        "-o",
        str(tmp_path / "november.csv"),
    )
    _, token = api_token_create(user=make_user("Administrator"))
    env = {"BASE": f"http://127.0.0.1:{asgi_server}", "TOKEN": token}

    result = _run("verify-file", tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert "file matches manifest" in result.stdout

    import httpx

    api = httpx.Client(base_url=env["BASE"], headers={"Authorization": f"Bearer {token}"})
    (tmp_path / "public_key.b64").write_text(
        api.get("/api/v1/audit/public-key").json()["public_key"]
    )
    result = _run("verify-checkpoint", tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert "Signature Verified Successfully" in result.stdout

    manifest = json.loads((tmp_path / "november.csv.manifest.json").read_text())
    records = api.get("/api/v1/audit/records", params={"limit": 1000}).json()["results"]
    exported = next(r for r in records if r["action"] == "messages.exported")
    assert exported["data"]["sha256"] == manifest["sha256"]
    (tmp_path / "record.json").write_text(json.dumps(exported))
    env["SEQUENCE"] = str(exported["sequence"])
    result = _run("verify-inclusion", tmp_path, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"record #{exported['sequence']} IS in the checkpointed tree" in result.stdout
    # The same step refuses the record once its data is edited, although its hash is unchanged.
    forged = {**exported, "data": {**exported["data"], "rows": exported["data"]["rows"] + 1}}
    (tmp_path / "record.json").write_text(json.dumps(forged))
    result = _run("verify-inclusion", tmp_path, env)
    assert result.returncode != 0
    assert f"record #{exported['sequence']} is NOT intact" in result.stdout
    (tmp_path / "record.json").write_text(json.dumps(exported))

    _append(4)
    (tmp_path / "new.txt").write_text(audit_checkpoint_create().note)
    result = _run("verify-consistency", tmp_path, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "extends checkpoint" in result.stdout

    # A forged signature and a forged checkpoint fail the same commands.
    checkpoint = tmp_path / "checkpoint.txt"
    good = checkpoint.read_text()
    checkpoint.write_text(good.replace("\n6\n", "\n5\n", 1))
    assert _run("verify-checkpoint", tmp_path, env).returncode != 0
    checkpoint.write_text(good)

    # Someone removes the newest records; the saved checkpoint catches it.
    with transaction.atomic(), ledger_maintenance():
        AuditRecord.objects.filter(sequence__gt=4).delete()
    verify = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "python"),
            "manage.py",
            "verify_audit",
            "--checkpoint",
            str(checkpoint),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "DATABASE_URL": _database_url()},
    )
    assert verify.returncode != 0
    assert "shorter ledger: records #5 to #6 are missing" in verify.stderr


def _database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _fenced(kind: str, name: str) -> str:
    match = re.search(rf"```{kind} {name}\n(.*?)```", DOC, re.S)
    assert match, f"docs/AUDIT.md lost its {name} block"
    return match.group(1)


def test_the_worked_example_of_the_record_hash_is_what_clientdesk_and_the_checker_compute(
    tmp_path,
):
    """The canonical form is written down byte for byte; the example must be exactly what
    `record_hash` hashes, and the checker must agree with both."""
    from clientdesk.audit.models import AuditRecord
    from clientdesk.audit.services import record_hash

    served = json.loads(_fenced("json", "record-example"))
    canonical = _fenced("text", "record-example-canonical").removesuffix("\n").encode()
    assert f"these {len(canonical)} bytes" in DOC
    assert hashlib.sha256(canonical).hexdigest() == served["hash"]
    assert served["hash"] in DOC.split("record-example-canonical", 1)[1]
    record = AuditRecord(
        sequence=served["sequence"],
        created_at=datetime.fromisoformat(served["created_at"]),
        actor_type=served["actor"]["type"],
        actor_id=served["actor"]["id"] or "",
        actor_label=served["actor"]["name"],
        action=served["action"],
        object_type=served["object_type"],
        object_id=served["object_id"],
        data=served["data"],
        prev_hash=served["prev_hash"],
    )
    assert record_hash(record) == served["hash"]
    (tmp_path / "record.json").write_text(json.dumps(served))
    checker = subprocess.run(
        [sys.executable, "-I", str(CHECKER), "record", "record.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checker.returncode == 0, checker.stdout + checker.stderr
    served["data"]["after"]["last_name"] = "Garcia"
    (tmp_path / "record.json").write_text(json.dumps(served))
    checker = subprocess.run(
        [sys.executable, "-I", str(CHECKER), "record", "record.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checker.returncode == 1 and "is NOT intact" in checker.stdout
