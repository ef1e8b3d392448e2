"""The portal's files: `POST /portal/api/v1/files` (a client's own upload) and `GET
/portal/api/v1/files/{id}` (a file of the client's own: its uploads and files on messages to
it), through the files app's services."""

import uuid

from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from clientdesk.files.apis import (
    DOWNLOAD_RESPONSES,
    UPLOAD_REQUEST,
    UPLOAD_RESPONSES,
    AnyAccept,
    store_upload,
    upload_max_body,
)
from clientdesk.files.downloads import file_response
from clientdesk.files.selectors import file_for_client
from clientdesk.portal.apis import PortalApiView


class PortalFileUploadApi(PortalApiView):
    parser_classes = [MultiPartParser]
    max_body_bytes = upload_max_body()

    @extend_schema(
        operation_id="portal_files_upload", request=UPLOAD_REQUEST, responses=UPLOAD_RESPONSES
    )
    def post(self, request: Request) -> Response:
        """Upload a file to attach to a reply or to answer a document request."""
        return store_upload(request, client=self.portal_client(request).client)


class PortalFileDownloadApi(PortalApiView):
    content_negotiation_class = AnyAccept

    @extend_schema(operation_id="portal_files_download", responses=DOWNLOAD_RESPONSES)
    def get(self, request: Request, file_id: uuid.UUID) -> HttpResponse | StreamingHttpResponse:
        """One of the client's own files, as an attachment; `Range` for a part."""
        client = self.portal_client(request).client
        return file_response(request, file_for_client(client=client, file_id=file_id))
