"""docs/audit/rfc9162.py run as an auditor runs it (another Python process, isolated from
Clientdesk's code) on evidence served by a real ledger through the API: it accepts the evidence
as served and refuses every tampered variant, and unreadable input gets a clear error, exit 2
and no traceback (issue 15, item 3: it trusted the record's stored `hash`)."""

import base64
import copy
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.db import transaction
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from clientdesk.audit.services import audit_append, audit_checkpoint_create, audit_sequence
from tests.sending import send_text

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
CHECKER = ROOT / "docs" / "audit" / "rfc9162.py"

# Data that exercises every rule of the canonical form: key order by code point (non-BMP
# included), escapes, non-ASCII, U+2028, floats, big integers, nesting, empty values.
AWKWARD_DATA = {
    "z": 1,
    "é": "e\u0301 (decomposed) and é",
    "😀": ["\x01\x1f\x7f", '"quoted" \\ back', "line\u2028sep", "\t\n\r\b\f"],
    "\uffff": {"nested": {"deeper": [1.5, 100.0, 1e-07, 1e16, -0.0, 2**70, True, None]}},
    "": "",
    "A": [],
    "b": {},
}


@dataclass
class Evidence:
    dir: Path
    records: list[dict[str, Any]]
    vkey: str

    def write(self, name: str, value: Any) -> str:
        path = self.dir / name
        path.write_text(value if isinstance(value, str) else json.dumps(value))
        return name

    def record(self, action: str) -> dict[str, Any]:
        return copy.deepcopy(next(r for r in self.records if r["action"] == action))

    def proof_of(self, record: dict[str, Any]) -> str:
        return f"proof-{record['sequence']}.json"


def _run(evidence: Evidence, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", "rfc9162.py", *args],
        cwd=evidence.dir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _inclusion(evidence: Evidence, record: Any, proof: str | None = None):
    name = evidence.write("candidate.json", record)
    proof = proof or evidence.proof_of(record)
    return _run(evidence, "inclusion", "checkpoint.txt", name, proof, "--key", "vkey.txt")


@pytest.fixture
def evidence(tmp_path, make_user, make_client, api_for) -> Evidence:
    agent = make_user("Agent", first_name="Zoë", last_name="<b>Müller</b>")
    hostile = make_client(first_name="\u202eevil\u202c <script>", last_name="ت" * 90)
    send_text(agent, hostile, "Hello {{firstName}}")
    for actor, client_actor, data in [
        (agent, None, AWKWARD_DATA),
        (None, hostile, {"in_reply_to": None}),
        (None, None, {}),
    ]:
        with transaction.atomic():
            audit_append(
                actor=actor,
                client_actor=client_actor,
                action="test.awkward" if data else "test.event",
                object_type="thing",
                object_id="ü-1",
                created_at=datetime(2026, 11, 30, 12, 0, 0, 250000, tzinfo=UTC),
                data=data,
            )
    audit_sequence()
    audit_checkpoint_create()
    api = api_for(make_user("Administrator"))
    records = api.get("/api/v1/audit/records", {"limit": 1000}).json()["results"]
    key = api.get("/api/v1/audit/public-key").json()
    found = Evidence(tmp_path, records, key["vkey"])
    shutil.copy(CHECKER, tmp_path / "rfc9162.py")
    found.write("checkpoint.txt", api.get("/api/v1/audit/checkpoint").content.decode())
    found.write("vkey.txt", key["vkey"])
    pem = Ed25519PublicKey.from_public_bytes(base64.b64decode(key["public_key"])).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    found.write("public-key.pem", pem.decode())
    found.write("page.json", {"results": records, "next": None})
    for record in records:
        found.write(f"record-{record['sequence']}.json", record)
        proof = api.get(f"/api/v1/audit/records/{record['sequence']}/proof").json()
        found.write(found.proof_of(record), proof)
    return found


def test_the_evidence_as_served_holds_with_the_key_in_every_form(evidence):
    assert {"message.sent", "client.created", "test.awkward", "test.event"} <= {
        r["action"] for r in evidence.records
    }
    for record in evidence.records:
        result = _inclusion(evidence, record)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"record #{record['sequence']} IS in the checkpointed tree" in result.stdout
        assert _run(evidence, "record", f"record-{record['sequence']}.json").returncode == 0
    for key in ["vkey.txt", "public-key.pem", evidence.vkey]:
        result = _run(evidence, "checkpoint", "checkpoint.txt", "--key", key)
        assert result.returncode == 0, result.stderr
        assert f"tree_size {len(evidence.records)}" in result.stdout
    result = _run(
        evidence, "root", "page.json", "--checkpoint", "checkpoint.txt", "--key", "vkey.txt"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "have the root checkpoint" in result.stdout


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(record: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = record
        for name in parents:
            target = target[name]
        target[last] = value

    return edit


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def edit(record: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = record
        for name in parents:
            target = target[name]
        del target[last]

    return edit


# Edits that keep the file well-formed: the checker must find each by recomputing the hash.
CONTENT_EDITS = {
    "data value": _set("data.z", 2),
    "data value of another type": _set("data.z", "1"),
    "data integer as float": _set("data.z", 1.0),
    "data key added": _set("data.extra", "x"),
    "data key removed": _drop("data.A"),
    "data nested value": _set("data.\uffff.nested.deeper", [1.5]),
    "data string normalised": _set("data.é", "é (decomposed) and é"),
    "data replaced": _set("data", {}),
    "sequence": _set("sequence", 2),
    "created_at": _set("created_at", "2026-11-30T12:00:00.250001Z"),
    "actor type": _set("actor.type", "system"),
    "actor id": _set("actor.id", None),
    "actor name": _set("actor.name", "Someone else"),
    "action": _set("action", "test.event"),
    "object_type": _set("object_type", "message"),
    "object_id": _set("object_id", "u-1"),
    "prev_hash": _set("prev_hash", "0" * 64),
}


@pytest.mark.parametrize("edit", CONTENT_EDITS)
def test_an_edited_field_is_refused_although_its_hash_is_in_the_tree(evidence, edit):
    record = evidence.record("test.awkward")
    CONTENT_EDITS[edit](record)
    result = _inclusion(evidence, record, proof=evidence.proof_of(evidence.record("test.awkward")))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"record #{record['sequence']} is NOT intact" in result.stdout
    assert "IS in" not in result.stdout
    assert _run(evidence, "record", "candidate.json").returncode == 1


def test_another_records_hash_is_refused_with_either_proof(evidence):
    record, other = evidence.record("test.awkward"), evidence.record("message.sent")
    record["hash"] = other["hash"]
    for proof in [evidence.proof_of(record), evidence.proof_of(other)]:
        result = _inclusion(evidence, record, proof=proof)
        assert result.returncode == 1 and "is NOT intact" in result.stdout


def test_an_intact_record_with_another_records_proof_is_refused(evidence):
    record, other = evidence.record("test.awkward"), evidence.record("message.sent")
    result = _inclusion(evidence, record, proof=evidence.proof_of(other))
    assert result.returncode == 1
    assert f"record #{record['sequence']} is leaf {record['sequence'] - 1}" in result.stdout


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# Files that are not a record as the API serves it: refused as unreadable, never a traceback.
UNREADABLE_RECORDS: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "extra field": (lambda r: {**r, "note": "x"}, "unexpected 'note'"),
    "missing field": (lambda r: {k: v for k, v in r.items() if k != "data"}, "missing data"),
    "actor extra field": (lambda r: {**r, "actor": {**r["actor"], "x": 1}}, "unexpected 'x'"),
    "actor missing field": (lambda r: {**r, "actor": {"type": "staff"}}, "missing id, name"),
    "sequence as text": (lambda r: {**r, "sequence": "5"}, "sequence is not a whole number"),
    "sequence as boolean": (lambda r: {**r, "sequence": True}, "sequence is not a whole number"),
    "sequence as float": (lambda r: {**r, "sequence": 5.0}, "sequence is not a whole number"),
    "sequence zero": (lambda r: {**r, "sequence": 0}, "sequence is not a whole number"),
    "created_at offset": (
        lambda r: {**r, "created_at": r["created_at"][:-1] + "+00:00"},
        "created_at is not as the API writes it",
    ),
    "hash in capitals": (lambda r: {**r, "hash": r["hash"].upper()}, "hash is not 64 lowercase"),
    "prev_hash short": (lambda r: {**r, "prev_hash": "ab"}, "prev_hash is not 64 lowercase"),
    "actor type unknown": (
        lambda r: {**r, "actor": {**r["actor"], "type": "root"}},
        "actor type is not one of",
    ),
    "an array": (lambda r: [r], "is not a JSON object"),
    "a string": (lambda r: json.dumps("record"), "is not a JSON object"),
    "NaN in data": (lambda r: json.dumps(r)[:-1] + ', "x": NaN}', "NaN is not JSON"),
    "duplicate key": (
        lambda r: json.dumps(r)[:-1] + ', "data": {}}',
        "the key 'data' appears twice",
    ),
    "not JSON": (lambda r: "{sequence: 1", "not JSON"),
    "empty": (lambda r: "", "not JSON"),
    "deeply nested": (lambda r: _nested(200_000), "nested too deeply"),
    "huge integer": (lambda r: json.dumps(r)[:-1] + ', "x": ' + "9" * 5000 + "}", "digits"),
    "lone surrogate": (
        lambda r: json.dumps({**r, "data": {"x": "\ud800"}}),
        "lone surrogate",
    ),
}


@pytest.mark.parametrize("case", UNREADABLE_RECORDS)
def test_a_record_file_that_is_not_a_served_record_is_refused_clearly(evidence, case):
    make, says = UNREADABLE_RECORDS[case]
    record = evidence.record("test.awkward")
    result = _inclusion(evidence, make(record), proof=evidence.proof_of(record))
    assert result.returncode == 2, result.stdout + result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    assert "IS in" not in result.stdout


def test_bytes_that_are_not_utf8_or_too_many_are_refused_clearly(evidence):
    proof = evidence.proof_of(evidence.records[0])
    (evidence.dir / "latin1.json").write_bytes(b'{"sequence": "\xe9"}')
    with open(evidence.dir / "huge.json", "wb") as f:
        f.truncate(64 * 2**20 + 1)
    for name, says in [("latin1.json", "not UTF-8"), ("huge.json", "larger than")]:
        result = _run(evidence, "inclusion", "checkpoint.txt", name, proof, "--key", "vkey.txt")
        assert result.returncode == 2 and says in result.stderr
        assert "Traceback" not in result.stderr
    result = _run(evidence, "record", "no-such-file.json")
    assert result.returncode == 2 and "cannot read" in result.stderr


def _flip_base64(text: str, at: int = 10) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[at % len(raw)] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _note_lines(evidence: Evidence) -> list[str]:
    return (evidence.dir / "checkpoint.txt").read_text().split("\n")


def _other_vkey(evidence: Evidence) -> str:
    """A real verifier key of the same name, but not the ledger's."""
    name = evidence.vkey.split("+")[0]
    public = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4]
    encoded = base64.b64encode(bytes([1]) + public).decode()
    return f"{name}+{key_id.hex()}+{encoded}"


def _forged_notes(evidence: Evidence) -> dict[str, tuple[str, int, str]]:
    lines = _note_lines(evidence)
    origin, size, root, _, signature = lines[:5]
    name, encoded = signature.rsplit(" ", 1)

    def note(*body: str, sig: str = signature) -> str:
        return "\n".join([*body, "", sig, ""])

    return {
        "signature changed": (
            note(origin, size, root, sig=f"{name} {_flip_base64(encoded, 40)}"),
            1,
            "does NOT verify",
        ),
        "tree size changed": (note(origin, str(int(size) - 1), root), 1, "does NOT verify"),
        "root changed": (note(origin, size, _flip_base64(root)), 1, "does NOT verify"),
        "origin changed": (note("evil.example/audit", size, root), 1, "does NOT verify"),
        "no signature": (f"{origin}\n{size}\n{root}\n", 2, "not a signed note"),
        "garbage": ("\x00\x01 not a note", 2, "not a signed note"),
        "signature not base64": (note(origin, size, root, sig=f"{name} !!!"), 2, "not base64"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "signature changed",
        "tree size changed",
        "root changed",
        "origin changed",
        "no signature",
        "garbage",
        "signature not base64",
    ],
)
def test_a_forged_checkpoint_is_refused_by_every_command_that_reads_one(evidence, case):
    note, code, says = _forged_notes(evidence)[case]
    evidence.write("forged.txt", note)
    record = evidence.records[0]
    runs = [
        ("checkpoint", "forged.txt", "--key", "vkey.txt"),
        ("inclusion", "forged.txt", f"record-{record['sequence']}.json", "proof-1.json"),
        ("consistency", "forged.txt", "checkpoint.txt", "consistency.json"),
        ("root", "page.json", "--checkpoint", "forged.txt"),
    ]
    evidence.write("consistency.json", {"first": 1, "second": 1, "hashes": []})
    for args in runs:
        if args[0] != "checkpoint":
            args = (*args, "--key", "vkey.txt")
        result = _run(evidence, *args)
        assert result.returncode == code, (args, result.stdout, result.stderr)
        assert says in result.stdout + result.stderr
        assert "Traceback" not in result.stderr


def test_a_checkpoint_is_refused_with_another_key_or_a_key_that_is_not_one(evidence):
    record = f"record-{evidence.records[0]['sequence']}.json"
    other = _other_vkey(evidence)
    result = _run(evidence, "inclusion", "checkpoint.txt", record, "proof-1.json", "--key", other)
    assert result.returncode == 1 and "NOT signed by the key given" in result.stdout
    for bad in ["nonsense", "a+zz+!!", evidence.vkey[:-8] + "AAAAAAA="]:
        result = _run(evidence, "checkpoint", "checkpoint.txt", "--key", bad)
        assert result.returncode == 2 and "error:" in result.stderr
        assert "Traceback" not in result.stderr
    result = _run(evidence, "checkpoint", "checkpoint.txt")
    assert result.returncode == 2 and "--key" in result.stderr


def _proof_edits(proof: dict[str, Any]) -> dict[str, tuple[Any, int, str]]:
    hashes = proof["hashes"]
    return {
        "a hash changed": ({**proof, "hashes": [_flip_base64(hashes[0]), *hashes[1:]]}, 1, "NOT"),
        "a hash dropped": ({**proof, "hashes": hashes[1:]}, 1, "NOT"),
        "a hash added": ({**proof, "hashes": [*hashes, hashes[0]]}, 1, "NOT"),
        "leaf index": ({**proof, "leaf_index": proof["leaf_index"] + 1}, 1, "proof is for leaf"),
        "tree size": ({**proof, "tree_size": proof["tree_size"] - 1}, 1, "for a tree of"),
        "not base64": ({**proof, "hashes": ["%%%"]}, 2, "is not base64"),
        "31 bytes": ({**proof, "hashes": [base64.b64encode(b"x" * 31).decode()]}, 2, "32-byte"),
        "too many": ({**proof, "hashes": [hashes[0]] * 65}, 2, "at most 64"),
        "extra field": ({**proof, "root": "x"}, 2, "unexpected 'root'"),
        "negative index": ({**proof, "leaf_index": -1}, 2, "leaf_index is not a whole number"),
        "not JSON": ("[1,", 2, "not JSON"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "a hash changed",
        "a hash dropped",
        "a hash added",
        "leaf index",
        "tree size",
        "not base64",
        "31 bytes",
        "too many",
        "extra field",
        "negative index",
        "not JSON",
    ],
)
def test_a_tampered_inclusion_proof_is_refused(evidence, case):
    record = evidence.record("test.awkward")
    proof = json.loads((evidence.dir / evidence.proof_of(record)).read_text())
    assert proof["hashes"], "the ledger is large enough for a proof with hashes"
    edited, code, says = _proof_edits(proof)[case]
    result = _inclusion(evidence, record, proof=evidence.write("edited-proof.json", edited))
    assert result.returncode == code, result.stdout + result.stderr
    assert says in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def grown(evidence, api_for, make_user) -> Evidence:
    """The same ledger a few records later, with its new checkpoint and a consistency proof."""
    for n in range(5):
        with transaction.atomic():
            audit_append(
                actor=None,
                action="test.later",
                object_type="thing",
                object_id=n,
                created_at=datetime(2026, 12, 1, tzinfo=UTC),
            )
    new = audit_checkpoint_create()
    api = api_for(make_user("Administrator"))
    proof = api.get(
        "/api/v1/audit/consistency", {"first": len(evidence.records), "second": new.tree_size}
    ).json()
    evidence.write("new.txt", new.note)
    evidence.write("consistency.json", proof)
    return evidence


def test_consistency_holds_as_served_and_fails_when_tampered(grown):
    def consistency(old: str = "checkpoint.txt", new: str = "new.txt", proof: Any = None):
        name = "consistency.json" if proof is None else grown.write("edited.json", proof)
        return _run(grown, "consistency", old, new, name, "--key", "vkey.txt")

    result = consistency()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "extends checkpoint" in result.stdout
    proof = json.loads((grown.dir / "consistency.json").read_text())
    for edited in [
        {**proof, "hashes": [_flip_base64(proof["hashes"][0]), *proof["hashes"][1:]]},
        {**proof, "hashes": proof["hashes"][:-1]},
        {**proof, "first": proof["first"] - 1},
        {**proof, "second": proof["second"] + 1},
    ]:
        result = consistency(proof=edited)
        assert result.returncode == 1, result.stdout + result.stderr
    assert consistency(old="new.txt", new="checkpoint.txt").returncode == 1
    key = Ed25519PrivateKey.generate()
    lines = _note_lines(grown)
    body = "\n".join(lines[:3]) + "\n"
    name = lines[4].split(" ")[1]
    public = key.public_key().public_bytes_raw()
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4]
    signature = base64.b64encode(key_id + key.sign(body.encode())).decode()
    forged = f"{body}\n\u2014 {name} {signature}\n"
    grown.write("foreign.txt", forged)
    result = consistency(old="foreign.txt")
    assert result.returncode == 1 and "NOT signed by the key given" in result.stdout


def _checker_module() -> Any:
    spec = importlib.util.spec_from_file_location("rfc9162", CHECKER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rechained(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What someone who rewrote the ledger serves: every hash and link recomputed."""
    checker = _checker_module()
    prev = "0" * 64
    out = []
    for record in copy.deepcopy(records):
        record["prev_hash"] = prev
        fields = checker.record_fields(record, "x")
        record["hash"] = prev = hashlib.sha256(checker.canonical_bytes(fields)).hexdigest()
        out.append(record)
    return out


def test_root_recomputes_every_record_and_link_before_comparing_with_the_checkpoint(evidence):
    def root(records: list[dict[str, Any]]):
        evidence.write("pages.json", {"results": records, "next": None})
        return _run(
            evidence, "root", "pages.json", "--checkpoint", "checkpoint.txt", "--key", "vkey.txt"
        )

    records = evidence.records
    edited = copy.deepcopy(records)
    edited[2]["data"] = {"forged": True}
    reordered = copy.deepcopy(records)
    reordered[1]["sequence"], reordered[2]["sequence"] = 3, 2
    rewritten = copy.deepcopy(records)
    rewritten[2]["data"] = {"forged": True}
    for case, served, says in [
        ("edited", edited, "is NOT intact"),
        ("missing", records[:2] + records[3:], "record #3 is missing"),
        ("duplicated", [*records, records[-1]], "is missing (found"),
        ("reordered", reordered, "is NOT intact"),
        ("rewritten and rechained", _rechained(rewritten), "do NOT have the root"),
        ("rechained and cut short", _rechained(records[:-1]), "fewer than"),
    ]:
        result = root(served)
        assert result.returncode == 1, (case, result.stdout, result.stderr)
        assert says in result.stdout, case
    assert root(list(reversed(records))).returncode == 0  # order in the file does not matter
    half = len(records) // 2
    evidence.write("page-1.json", {"results": records[:half], "next": "…"})
    evidence.write("page-2.json", records[half:])
    result = _run(evidence, "root", "page-1.json", "page-2.json", "--size", "3")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip()) == 64


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    field=st.sampled_from(
        [
            *("sequence", "created_at", "actor.type", "actor.id", "actor.name", "action"),
            *("object_type", "object_id", "data", "data.z", "data.é", "prev_hash", "hash"),
        ]
    ),
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=8,
    ),
)
def test_any_change_to_any_hashed_field_is_refused(evidence, field, value):
    checker = _checker_module()
    original = evidence.record("test.awkward")
    record = copy.deepcopy(original)
    _set(field, value)(record)
    assume(json.dumps(record, sort_keys=True) != json.dumps(original, sort_keys=True))
    with pytest.raises((checker.Fails, checker.Unreadable)):
        checker.check_record(record)
    checker.check_record(original)
