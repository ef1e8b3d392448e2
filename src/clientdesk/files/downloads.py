"""The HTTP answer that hands a stored file over: always as an attachment, never sniffed or run
by the browser, whole or a byte range (RFC 9110 §14: one range; several are answered whole)."""

import re
from urllib.parse import quote

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from clientdesk.core.problems import PROBLEM_CONTENT_TYPE, problem_body
from clientdesk.files.models import StoredFile
from clientdesk.files.sniffing import TEXT
from clientdesk.files.storage import files_storage, object_name, read_range

# RFC 9110 DIGIT: ASCII only (`\d` would take any script's digits, which `int()` reads too).
_RANGE = re.compile(r"^bytes=([0-9]{0,19})-([0-9]{0,19})$", re.ASCII)


def content_disposition(name: str) -> str:
    """`attachment` with an ASCII fallback and the exact name as RFC 6266 / 8187 `filename*`."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\%;' else "_" for ch in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _byte_range(header: str, size: int) -> tuple[int, int] | bool | None:
    """(first, last) of one satisfiable range; None to answer whole (absent, several ranges or
    not understood, as RFC 9110 lets a server ignore); False when unsatisfiable (416)."""
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0:
            return False
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        return False
    return start, min(end, size - 1)


def _protect(response: HttpResponse | StreamingHttpResponse, file: StoredFile) -> None:
    response["Content-Disposition"] = content_disposition(file.name)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    response["Cache-Control"] = "private, no-cache"
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = f'"{file.sha256}"'


def file_response(request: HttpRequest, file: StoredFile) -> HttpResponse | StreamingHttpResponse:
    """200 with the whole file, 206 with one range, 416 (problem+json) for a range past its end;
    the bytes streamed from storage a chunk at a time."""
    size = file.size
    content_type = f"{TEXT}; charset=utf-8" if file.content_type == TEXT else file.content_type
    wanted = None
    header = request.headers.get("Range", "")
    if_range = request.headers.get("If-Range", "")
    if header and (not if_range or if_range == f'"{file.sha256}"'):
        wanted = _byte_range(header, size)
    if wanted is False:
        body = problem_body(
            status_code=416,
            title="Range not satisfiable",
            detail=f"The file has {size:,} bytes; the range asked for lies beyond them.",
            type_slug="range-not-satisfiable",
        )
        refused = JsonResponse(body, status=416, content_type=PROBLEM_CONTENT_TYPE)
        refused["Content-Range"] = f"bytes */{size}"
        refused["Accept-Ranges"] = "bytes"
        return refused
    start, end = wanted if isinstance(wanted, tuple) else (0, size - 1)
    storage = files_storage()
    if request.method == "HEAD":
        response: HttpResponse | StreamingHttpResponse = HttpResponse(content_type=content_type)
    else:
        response = StreamingHttpResponse(
            read_range(storage, object_name(file.sha256), start, end), content_type=content_type
        )
    response["Content-Length"] = str(end - start + 1)
    if isinstance(wanted, tuple):
        response.status_code = 206
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    _protect(response, file)
    return response
