"""Streaming responses under ASGI: a synchronous iterator is read one chunk at a time."""

from collections.abc import AsyncIterator, Callable, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse


def async_streaming_middleware(
    get_response: Callable[[HttpRequest], HttpResponseBase],
) -> Callable[[HttpRequest], HttpResponseBase]:
    """Under ASGI, give a streaming response with a synchronous iterator (WhiteNoise's static
    files, the message export) an asynchronous one.

    Django's ASGI handler would otherwise read the whole iterator into a list before sending a
    byte, warning "StreamingHttpResponse must consume synchronous iterators": memory grows with
    the response. Under WSGI the server reads the synchronous iterator as it goes; nothing
    changes. First in MIDDLEWARE, so that it sees every response, WhiteNoise's included.
    """

    def middleware(request: HttpRequest) -> HttpResponseBase:
        response = get_response(request)
        if isinstance(request, ASGIRequest) and isinstance(response, StreamingHttpResponse):
            chunks = response.streaming_content
            if isinstance(chunks, Iterator):
                response.streaming_content = _in_thread(chunks, response)
        return response

    return middleware


async def _in_thread(chunks: Iterator[bytes], response: HttpResponseBase) -> AsyncIterator[bytes]:
    """Each chunk is made in the request's sync thread (where its database connection lives).

    When the stream ends early the response is closed here, in that thread: Django's handler
    closes it after a disconnect but not when sending fails or the iterator raises, and the
    iterator's own clean-up (the export's ledger record) must not be left to the garbage
    collector, which would run it on the event loop's thread. Closing twice does nothing more.
    """
    take = sync_to_async(_next, thread_sensitive=True)
    try:
        while (chunk := await take(chunks)) is not None:
            yield chunk
    except BaseException:
        await sync_to_async(response.close, thread_sensitive=True)()
        raise


def _next(chunks: Iterator[bytes]) -> bytes | None:
    return next(chunks, None)
