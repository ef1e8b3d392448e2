"""Template filters for follow-up: how far a due time is, in words a person scans."""

from datetime import datetime

from django import template

register = template.Library()


def _span(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{max(minutes, 1)} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h"
    return f"{hours // 24} d"


@register.filter
def due_words(due: datetime | None, now: datetime) -> str:
    """ "due in 3 h" before the due time, "overdue 2 d" after it."""
    if due is None:
        return ""
    seconds = (due - now).total_seconds()
    if seconds >= 0:
        return f"due in {_span(seconds)}"
    return f"overdue {_span(-seconds)}"
