"""The download behind a signed link (webhooks carry one per attachment): no credentials, the
signature and its hour are the credential."""

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.http import require_safe

from clientdesk.core.gate import public
from clientdesk.files.downloads import file_response
from clientdesk.files.errors import SignedUrlRefused
from clientdesk.files.services import file_from_signed_token


@require_safe
@public
def signed_download(request: HttpRequest, token: str) -> HttpResponse | StreamingHttpResponse:
    try:
        file = file_from_signed_token(token=token)
    except SignedUrlRefused as error:
        response = HttpResponse(error.detail, status=error.status, content_type="text/plain")
        response["Cache-Control"] = "no-store"
        return response
    return file_response(request, file)
