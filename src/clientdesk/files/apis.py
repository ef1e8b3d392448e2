"""Staff API of files: `POST /api/v1/files` (multipart field `file`) and `GET
/api/v1/files/{id}` (the bytes). The portal's own pair calls the same pieces."""

import uuid
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from clientdesk.accounts.requests import StaffApiRequest
from clientdesk.clients.permissions import ClientsPermission
from clientdesk.core.api import ApiView
from clientdesk.core.errors import ValidationFailed
from clientdesk.core.problems import PROBLEM_CONTENT_TYPE, problem_body
from clientdesk.files.downloads import file_response
from clientdesk.files.errors import FileRateLimited, FileRefused, ScannerUnavailable
from clientdesk.files.permissions import FilesPermission
from clientdesk.files.selectors import file_for_staff
from clientdesk.files.services import file_store
from clientdesk.files.sniffing import ACCEPTED

# The body of an upload: the file, the multipart framing and the form's other fields.
MULTIPART_OVERHEAD = 64 * 1024

FILE_LISTING = inline_serializer(
    "StoredFile",
    {
        "id": serializers.UUIDField(),
        "name": serializers.CharField(),
        "size": serializers.IntegerField(),
        "content_type": serializers.CharField(),
        "sha256": serializers.CharField(),
    },
)
UPLOAD_REQUEST = {
    "multipart/form-data": {
        "type": "object",
        "properties": {"file": {"type": "string", "format": "binary"}},
        "required": ["file"],
    }
}
UPLOAD_RESPONSES = {
    201: FILE_LISTING,
    413: OpenApiResponse(description="over CLIENTDESK_MAX_FILE_MB"),
    422: OpenApiResponse(description="empty, not an accepted type, or infected"),
    429: OpenApiResponse(description="the client's uploads an hour"),
    503: OpenApiResponse(description="the virus scanner did not answer"),
}
DOWNLOAD_RESPONSES: dict[Any, Any] = {
    **{
        (code, content_type): OpenApiResponse(OpenApiTypes.BINARY)
        for code in (200, 206)
        for content_type in ACCEPTED
    },
    416: OpenApiResponse(description="the range lies beyond the file"),
}


def upload_max_body() -> int:
    return int(settings.FILES_MAX_BYTES) + MULTIPART_OVERHEAD


def the_upload(request: Request) -> UploadedFile:
    files = request.FILES.getlist("file")
    if len(files) != 1:
        raise ValidationFailed(
            "Send one file in the multipart/form-data field 'file'.",
            errors={"file": ["Exactly one file is required."]},
        )
    return files[0]


def refusal_response(error: FileRefused) -> Response:
    """The problem+json of a refused upload, with `Retry-After` where waiting helps."""
    body = problem_body(
        status_code=error.status,
        title=error.title,
        detail=error.detail,
        type_slug=error.type_slug,
        **error.extra,
    )
    response = Response(body, status=error.status, content_type=PROBLEM_CONTENT_TYPE)
    if isinstance(error, (FileRateLimited, ScannerUnavailable)):
        response["Retry-After"] = str(error.retry_after)
    return response


def store_upload(request: Request, **owner: Any) -> Response:
    """Store the request's one file for `owner` (`user=` or `client=`): 201 with its listing."""
    upload = the_upload(request)
    try:
        stored = file_store(upload=upload, **owner)
    except FileRefused as error:
        return refusal_response(error)
    finally:
        upload.close()
    return Response(stored.listing(), status=status.HTTP_201_CREATED)


class AnyAccept(BaseContentNegotiation):
    """A download answers with the file's own type whatever `Accept` says (and JSON for a
    problem), never 406."""

    def select_parser(self, request: Request, parsers: Any) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Request, renderers: Any, format_suffix: Any = None) -> Any:
        return (renderers[0], renderers[0].media_type)


class FileUploadApi(ApiView):
    required_permissions = {"POST": FilesPermission.UPLOAD_FILE}
    parser_classes = [MultiPartParser]
    max_body_bytes = upload_max_body()

    @extend_schema(operation_id="files_upload", request=UPLOAD_REQUEST, responses=UPLOAD_RESPONSES)
    def post(self, request: StaffApiRequest) -> Response:
        """Upload a file to attach to a message; checked by content, kept by its SHA-256."""
        return store_upload(request, user=request.user)


class FileDownloadApi(ApiView):
    # The uploader (while the file belongs to no client) or staff who may view its client:
    # checked per file by `file_for_staff`.
    required_permissions = {"GET": (ClientsPermission.VIEW_CLIENT, FilesPermission.UPLOAD_FILE)}
    content_negotiation_class = AnyAccept

    @extend_schema(operation_id="files_download", responses=DOWNLOAD_RESPONSES)
    def get(
        self, request: StaffApiRequest, file_id: uuid.UUID
    ) -> HttpResponse | StreamingHttpResponse:
        """The file's bytes, as an attachment; `Range` for a part."""
        return file_response(request, file_for_staff(user=request.user, file_id=file_id))
