"""Find rows stored before text was checked at the boundary: a NUL or a lone surrogate in any
text or JSON column. Exit 1 naming each row, 0 when there are none."""

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import models

from clientdesk.core.textcheck import invalid_text

_TEXT_FIELDS = (models.CharField, models.TextField, models.JSONField)


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args: Any, **options: Any) -> None:
        found = 0
        for model in apps.get_models():
            fields = [
                f.name
                for f in model._meta.concrete_fields
                if isinstance(f, _TEXT_FIELDS) and not f.primary_key
            ]
            if not fields:
                continue
            rows = model._default_manager.values_list("pk", *fields).iterator(chunk_size=2000)
            for pk, *values in rows:
                for name, value in zip(fields, values, strict=True):
                    for path, problem in invalid_text(value, prefix=name):
                        found += 1
                        self.stdout.write(f"{model._meta.label} {pk}: {path} {problem}")
        if found:
            raise CommandError(f"{found} stored value(s) hold invalid text; fix them by hand.")
        self.stdout.write("No stored text holds a NUL or a lone surrogate.")
