"""Load the demo's message templates (English with German and Portuguese variants); safe to run
again. `make run` runs it after `load_demo`, whose manager is their author."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from clientdesk.accounts.models import User
from clientdesk.messaging.models import MessageTemplate
from clientdesk.messaging.services.templates import SetVariant, template_change, template_create

DEMO_TEMPLATES: dict[str, dict[str, Any]] = {
    "Documents ready": {
        "expects_reply": False,
        "variants": {
            "en": "Hello {{ firstName }}, your documents are ready in your online cabinet.",
            "de": "Hallo {{ firstName }}, Ihre Unterlagen liegen in Ihrem Kundenbereich bereit.",
            "pt": "Olá {{ firstName }}, os seus documentos estão prontos na sua área de cliente.",
        },
    },
    "Missing ID document": {
        "expects_reply": True,
        "variants": {
            "en": "Dear {{ fullName }}, please send us a copy of your passport or ID card.",
            "de": "Guten Tag {{ fullName }}, bitte senden Sie uns eine Kopie Ihres Ausweises.",
        },
    },
    "KYC documents": {
        "expects_reply": True,
        "document_requests": ["Passport or ID card", "Proof of address"],
        "variants": {
            "en": "Dear {{ fullName }}, to complete your verification please upload a photo of "
            "your passport or ID card and a recent proof of address (a utility bill or bank "
            "statement) in your online cabinet.",
            "de": "Guten Tag {{ fullName }}, bitte laden Sie für Ihre Verifizierung ein Foto "
            "Ihres Reisepasses oder Ausweises und einen aktuellen Adressnachweis in Ihrem "
            "Kundenbereich hoch.",
        },
    },
}


class Command(BaseCommand):
    help = "Create the demo's message templates if they do not exist (idempotent)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--author", default="manager", help="username of the author")

    def handle(self, *args: Any, **options: Any) -> None:
        author = User.objects.filter(username=options["author"]).first()
        if author is None:
            raise CommandError(f"No user {options['author']!r}: run load_demo first.")
        made = 0
        for name, spec in DEMO_TEMPLATES.items():
            if MessageTemplate.objects.filter(name=name).exists():
                continue
            variants = dict(spec["variants"])
            version = template_create(
                author=author,
                name=name,
                body=variants.pop("en"),
                language="en",
                expects_reply=spec["expects_reply"],
                document_requests=spec.get("document_requests"),
            )
            template_change(
                author=author,
                template_id=version.template_id,
                actions=[SetVariant(body, language) for language, body in variants.items()],
            )
            made += 1
        self.stdout.write(f"Demo templates: {made} created, {len(DEMO_TEMPLATES) - made} kept.")
