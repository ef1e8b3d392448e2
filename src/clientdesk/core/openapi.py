"""The OpenAPI document says what the API really answers: every operation may answer with the
problem+json errors that every view can produce (core/problems.py, core/views.py)."""

from typing import Any

from clientdesk.core.problems import PROBLEM_CONTENT_TYPE, status_title

# Statuses any operation can produce through the shared machinery: bad JSON or bad Host (400),
# no or bad credentials (401), the URL's permission (403), an unknown id (404), a method (405),
# an Accept the API cannot answer (406), a conflict (409), a body over the limit (413), a body
# that is not JSON (415), validation (422); a one-time code already used or expired (410) and a
# rate limit (429) on the portal.
COMMON_ERRORS = (400, 401, 403, 404, 405, 406, 409, 410, 413, 415, 422, 429)

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "object",
            "description": "Field name → messages, for validation problems.",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "required": ["type", "title", "status", "detail"],
    "additionalProperties": True,
}


def add_problem_responses(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    reference = {"$ref": "#/components/schemas/Problem"}
    for methods in result.get("paths", {}).values():
        for operation in methods.values():
            responses = operation.setdefault("responses", {})
            for code in COMMON_ERRORS:
                documented = responses.setdefault(str(code), {"description": status_title(code)})
                documented["content"] = {PROBLEM_CONTENT_TYPE: {"schema": reference}}
    return result
