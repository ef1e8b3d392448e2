"""The demo's templates: made once by the demo manager, through the template services (so they
are in the ledger), with variants a German or Portuguese demo client gets."""

import io

import pytest
from django.core.management import CommandError, call_command

from clientdesk.audit.models import AuditEntry
from clientdesk.messaging.management.commands.load_demo_templates import DEMO_TEMPLATES
from clientdesk.messaging.models import MessageTemplate
from clientdesk.messaging.services.sending import message_template_text

pytestmark = pytest.mark.django_db


def _load() -> str:
    out = io.StringIO()
    call_command("load_demo_templates", stdout=out)
    return out.getvalue()


def test_made_once_in_the_ledger_and_each_client_gets_its_language(make_client, agent):
    call_command("load_demo", "--clients", "0", stdout=io.StringIO())
    assert "3 created, 0 kept" in _load()
    assert "0 created, 3 kept" in _load()
    templates = {t.name: t for t in MessageTemplate.objects.all()}
    assert set(templates) == set(DEMO_TEMPLATES)
    assert AuditEntry.objects.filter(action="template.created").count() == 3
    assert templates["Missing ID document"].expects_reply
    kyc = templates["KYC documents"]
    assert kyc.expects_reply
    assert kyc.versions.order_by("-version").first().document_requests == [
        "Passport or ID card",
        "Proof of address",
    ]

    ready = templates["Documents ready"].id
    for language, starts in (("de", "Hallo Jürgen"), ("pt", "Olá Jürgen"), ("fr", "Hello Jürgen")):
        client = make_client(first_name="Jürgen", language=language)
        text = message_template_text(sender=agent, client=client, template_id=ready)
        assert text.startswith(starts), (language, text)


def test_without_the_demo_manager_it_says_what_to_run_first():
    with pytest.raises(CommandError, match="run load_demo first"):
        _load()
