"""`verify_audit` names the first divergence and vouches for exactly the records before it,
for every kind of divergence, with and without a saved checkpoint (issue 15, item 12: it said
"93 records before it are intact" when the divergence was at #30)."""

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction

from clientdesk.audit.append_only import ledger_maintenance
from clientdesk.audit.models import AuditRecord, AuditTreeNode
from clientdesk.audit.selectors import audit_verify
from clientdesk.audit.services import (
    audit_append,
    audit_checkpoint_create,
    audit_sequence,
    record_hash,
)

pytestmark = pytest.mark.django_db

SIZE = 40
AT = 30  # where every tampering below starts


def _append(n: int) -> None:
    start = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    for i in range(n):
        with transaction.atomic():
            audit_append(
                actor=None,
                action="test.event",
                object_type="thing",
                object_id=i,
                created_at=start + timedelta(seconds=i),
                data={"n": i},
            )
    audit_sequence()


def _rechain(upto: int | None = None) -> None:
    """Recompute the hashes (from #1, up to `upto`) as someone who can drop triggers would."""
    prev = "0" * 64
    with transaction.atomic(), ledger_maintenance():
        for record in AuditRecord.objects.order_by("sequence"):
            if upto is not None and record.sequence > upto:
                break
            record.prev_hash = prev
            record.hash = prev = record_hash(record)
            record.save()


def _shift(from_sequence: int, by: int) -> None:
    records = AuditRecord.objects.filter(sequence__gte=from_sequence)
    for record in records.order_by("-sequence" if by > 0 else "sequence"):
        AuditRecord.objects.filter(pk=record.pk).update(sequence=record.sequence + by)


def _tamper(case: str) -> None:
    with transaction.atomic(), ledger_maintenance():
        records = AuditRecord.objects
        if case.startswith("edited"):
            records.filter(sequence=AT).update(actor_label="forged")
        elif case.startswith("missing"):
            records.filter(sequence=AT).delete()
            if "renumbered" in case:
                _shift(AT + 1, -1)
        elif case.startswith("inserted"):
            _shift(AT, +1)
            forged = records.get(sequence=AT - 1)
            forged.pk, forged.entry_id, forged.sequence = None, None, AT
            forged.object_id, forged.hash = "forged", record_hash(forged)
            forged.save()
        elif case.startswith("reordered"):
            records.filter(sequence=AT).update(sequence=-1)
            records.filter(sequence=AT + 1).update(sequence=AT)
            records.filter(sequence=-1).update(sequence=AT + 1)
        elif case.startswith("truncated"):
            records.filter(sequence__gte=AT).delete()
    if "recomputed up to" in case:
        _rechain(upto=AT + 5)
    elif "recomputed" in case:
        _rechain()


def _verify(*args: str) -> str:
    """The failure message of `verify_audit`."""
    with pytest.raises(CommandError) as raised:
        call_command("verify_audit", *args, stdout=io.StringIO())
    return str(raised.value)


def _checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "checkpoint.txt"
    path.write_text(audit_checkpoint_create().note)
    return path


BEFORE_SIGNED = f"Records #1 to #{AT - 1} before it are intact: they match the signed checkpoint."
BEFORE_CHAIN = f"Records #1 to #{AT - 1} before it are intact as far as the hash chain can tell."

# case -> (what the chain alone says, or None when it cannot see it; what a checkpoint says)
CASES = {
    "edited": ("content does not match its hash", "content does not match its hash"),
    "edited, recomputed": (None, f"differs from what checkpoint {SIZE} signed"),
    "missing": (
        f"record #{AT} is missing (the next record is #{AT + 1})",
        f"record #{AT} is missing (the next record is #{AT + 1})",
    ),
    "missing, renumbered, recomputed": (
        None,
        f"differs from what checkpoint {SIZE} signed although the chain holds: the chain was "
        f"recomputed after an edit, removal, insertion or reordering at #{AT}; the ledger has "
        "1 record(s) fewer than it signed",
    ),
    "inserted": ("prev_hash does not match", "prev_hash does not match"),
    "inserted, recomputed": (None, f"differs from what checkpoint {SIZE} signed"),
    "reordered": ("prev_hash does not match", "prev_hash does not match"),
    "reordered, recomputed": (None, f"differs from what checkpoint {SIZE} signed"),
    "truncated": (
        None,
        f"shorter ledger: records #{AT} to #{SIZE} are missing (checkpoint {SIZE} commits to "
        f"{SIZE} records, the ledger has {AT - 1})",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_the_first_divergence_and_the_records_before_it_are_named(case, tmp_path):
    _append(SIZE)
    path = _checkpoint(tmp_path)
    _tamper(case)
    chain_says, checkpoint_says = CASES[case]

    message = _verify("--checkpoint", str(path))
    assert f"broken at record #{AT}: {checkpoint_says}" in message
    assert BEFORE_SIGNED in message
    result = audit_verify(checkpoint=None)
    if chain_says is None:
        call_command("verify_audit", stdout=io.StringIO())  # the chain alone cannot see it
    else:
        message = _verify()
        assert f"broken at record #{AT}: {chain_says}" in message
        assert BEFORE_CHAIN in message
        assert (result.first_bad_sequence, result.intact_before) == (AT, AT - 1)


def test_a_break_after_the_checkpoint_vouches_for_the_signed_part_and_the_chain_part(tmp_path):
    _append(20)
    path = _checkpoint(tmp_path)
    _append(SIZE - 20)
    _tamper("edited")
    message = _verify("--checkpoint", str(path))
    assert f"broken at record #{AT}: content does not match its hash" in message
    assert (
        f"Records #1 to #{AT - 1} before it are intact: #1 to #20 match the signed checkpoint, "
        "the rest as far as the hash chain can tell." in message
    )


def test_a_partly_recomputed_chain_is_named_where_the_edit_is_not_where_the_chain_breaks(
    tmp_path,
):
    _append(SIZE)
    path = _checkpoint(tmp_path)
    _tamper("edited, recomputed up to #35")
    # The chain alone sees the break at #36 only, and says no more than that.
    chain = _verify()
    assert "broken at record #36: prev_hash does not match" in chain
    assert "Records #1 to #35 before it are intact as far as the hash chain can tell." in chain
    signed = audit_verify(checkpoint=_open(path))
    assert (signed.first_bad_sequence, signed.intact_before, signed.signed_before) == (
        AT,
        AT - 1,
        AT - 1,
    )


def test_an_edit_of_the_first_record_vouches_for_nothing(tmp_path):
    _append(5)
    path = _checkpoint(tmp_path)
    with transaction.atomic(), ledger_maintenance():
        AuditRecord.objects.filter(sequence=1).update(action="forged")
    _rechain()
    message = _verify("--checkpoint", str(path))
    assert "broken at record #1: differs from what checkpoint 5 signed" in message
    assert "No record before it can be vouched for." in message


def test_an_emptied_ledger_and_a_rewritten_tree_store_vouch_for_nothing(tmp_path):
    _append(SIZE)
    path = _checkpoint(tmp_path)
    _tamper_tree_and_records()
    message = _verify("--checkpoint", str(path))
    assert f"broken at record #1: the ledger does not match checkpoint {SIZE}" in message
    assert "No record before it can be vouched for." in message
    with transaction.atomic(), ledger_maintenance():
        AuditRecord.objects.all().delete()
    message = _verify("--checkpoint", str(path))
    assert "broken at record #1: the ledger is empty" in message
    assert "No record before it can be vouched for." in message


def test_the_audit_page_says_the_same(client, make_user, tmp_path):
    _append(SIZE)
    audit_checkpoint_create()
    _tamper("edited, recomputed")
    client.force_login(make_user("Administrator"))
    page = client.post("/audit/verify/", HTTP_HX_REQUEST="true").content.decode()
    assert f"Broken at record #{AT}:</strong> differs from what checkpoint {SIZE} signed" in page
    assert BEFORE_SIGNED in page
    assert f"{SIZE} records before it" not in page


def _tamper_tree_and_records() -> None:
    _tamper("edited, recomputed")
    with transaction.atomic(), ledger_maintenance():
        AuditTreeNode.objects.filter(level=0, index=AT - 1).update(hash=b"\x01" * 32)


def _open(path: Path):
    from clientdesk.audit import signing

    return signing.checkpoint_open(path.read_text())
