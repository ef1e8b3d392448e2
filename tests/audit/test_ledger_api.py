"""The audit API as an auditor uses it: records, checkpoint, public key and proofs, each proof
checked by the independent verifier against the signed checkpoint."""

import base64
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.db import transaction

from clientdesk.audit.models import AuditEntry
from clientdesk.audit.services import audit_append, audit_checkpoint_create, audit_sequence
from tests.audit import merkle_reference as ref

pytestmark = pytest.mark.django_db


def _append(n: int) -> None:
    for i in range(n):
        with transaction.atomic():
            audit_append(
                actor=None,
                action="test.event",
                object_type="thing",
                object_id=i,
                created_at=datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
                data={"n": i, "text": "<b>é\u2028"},
            )


@pytest.fixture
def auditor(make_user, api_for):
    api = api_for(make_user("Administrator"))
    # Issuing the auditor's token is itself in the ledger; these tests count the records they
    # append, so start them from an empty ledger.
    AuditEntry.objects.filter(action="api_token.created").delete()
    return api


def _checkpoint(api) -> tuple[int, bytes, str]:
    response = api.get("/api/v1/audit/checkpoint")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    note = response.content.decode()
    body, _, signature = note.partition("\n\n")
    key = api.get("/api/v1/audit/public-key").json()
    raw = base64.b64decode(signature.split(" ")[-1])
    Ed25519PublicKey.from_public_bytes(base64.b64decode(key["public_key"])).verify(
        raw[4:], (body + "\n").encode()
    )
    _, size, root = body.split("\n")
    return int(size), base64.b64decode(root), note


def test_records_page_with_after_and_next(auditor):
    _append(5)
    audit_sequence()
    first = auditor.get("/api/v1/audit/records", {"limit": 2}).json()
    assert [r["sequence"] for r in first["results"]] == [1, 2]
    record = first["results"][0]
    assert set(record) == {
        "sequence",
        "created_at",
        "actor",
        "action",
        "object_type",
        "object_id",
        "data",
        "prev_hash",
        "hash",
    }
    assert record["created_at"] == "2026-11-30T12:00:00Z"
    assert record["data"]["text"] == "<b>é\u2028"
    assert record["prev_hash"] == "0" * 64
    assert first["next"].endswith("after=2")
    rest = auditor.get("/api/v1/audit/records", {"after": 2, "limit": 10}).json()
    assert [r["sequence"] for r in rest["results"]] == [3, 4, 5]
    assert rest["next"] is None


def test_every_inclusion_proof_checks_against_the_signed_root(auditor):
    _append(13)
    audit_checkpoint_create()
    size, root, _ = _checkpoint(auditor)
    assert size == 13
    records = auditor.get("/api/v1/audit/records", {"limit": 100}).json()["results"]
    assert ref.mth([bytes.fromhex(r["hash"]) for r in records]) == root
    for record in records:
        proof = auditor.get(f"/api/v1/audit/records/{record['sequence']}/proof").json()
        assert proof["leaf_index"] == record["sequence"] - 1 and proof["tree_size"] == 13
        hashes = [base64.b64decode(h) for h in proof["hashes"]]
        leaf = bytes.fromhex(record["hash"])
        assert ref.root_from_inclusion(proof["leaf_index"], 13, leaf, hashes) == root


def test_consistency_between_two_signed_checkpoints(auditor):
    _append(6)
    audit_checkpoint_create()
    old_size, old_root, _ = _checkpoint(auditor)
    _append(5)
    audit_checkpoint_create()
    new_size, new_root, _ = _checkpoint(auditor)
    proof = auditor.get("/api/v1/audit/consistency", {"first": old_size}).json()
    assert (proof["first"], proof["second"]) == (6, 11)
    hashes = [base64.b64decode(h) for h in proof["hashes"]]
    assert ref.consistent(old_size, new_size, old_root, new_root, hashes)
    explicit = auditor.get("/api/v1/audit/consistency", {"first": 3, "second": 6}).json()
    assert explicit["second"] == 6


def test_public_key_shape(auditor):
    key = auditor.get("/api/v1/audit/public-key").json()
    name, key_id, encoded = key["vkey"].split("+", 2)
    assert name == key["name"]
    assert base64.b64decode(encoded) == b"\x01" + base64.b64decode(key["public_key"])
    assert len(key_id) == 8


@pytest.mark.parametrize(
    ("url", "params", "status", "field"),
    [
        ("/api/v1/audit/records/99/proof", {}, 404, None),
        ("/api/v1/audit/records/0/proof", {}, 404, None),
        ("/api/v1/audit/records/2/proof", {"tree_size": "1"}, 422, "tree_size"),
        ("/api/v1/audit/records/2/proof", {"tree_size": "99"}, 422, "tree_size"),
        ("/api/v1/audit/records/2/proof", {"tree_size": "x"}, 422, "tree_size"),
        ("/api/v1/audit/records", {"limit": "0"}, 422, "limit"),
        ("/api/v1/audit/records", {"after": "-1"}, 422, "after"),
        ("/api/v1/audit/consistency", {}, 422, "first"),
        ("/api/v1/audit/consistency", {"first": 4, "second": 2}, 422, "first"),
        ("/api/v1/audit/consistency", {"first": 2, "second": 99}, 422, "second"),
    ],
)
def test_bad_requests_are_problems_naming_the_field(auditor, url, params, status, field):
    _append(3)
    audit_sequence()
    response = auditor.get(url, params)
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    if field:
        assert field in response.json()["errors"]


def test_no_checkpoint_yet_is_a_404_problem(auditor):
    response = auditor.get("/api/v1/audit/checkpoint")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("role", [None, "Viewer", "Agent", "Manager"])
@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/audit/records",
        "/api/v1/audit/checkpoint",
        "/api/v1/audit/public-key",
        "/api/v1/audit/records/1/proof",
        "/api/v1/audit/consistency?first=1",
    ],
)
def test_the_ledger_api_needs_view_audit_record(make_user, api_for, role, url):
    _append(1)
    audit_checkpoint_create()
    response = api_for(make_user(role)).get(url)
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
