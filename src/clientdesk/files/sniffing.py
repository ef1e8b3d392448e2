"""What a file is, read from its bytes (never from its name or the Content-Type sent with it).

`puremagic` (a maintained, pure-Python signature database: no libmagic to install on each
machine) names what the first bytes are; the checks here then hold an accepted type to what a
browser, a PDF reader or a ZIP reader would make of the same bytes, so that one file cannot be
two things at once. docs/FILES.md lists what is accepted and why."""

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import puremagic

from clientdesk.files.errors import FileTypeRefused
from clientdesk.files.names import name_extension

HEAD = 64 * 1024
TAIL = 66 * 1024  # a ZIP's end record lies within its last 65,557 bytes
CHUNK = 64 * 1024

TEXT = "text/plain"
ACCEPTED: dict[str, tuple[str, frozenset[str]]] = {
    # content type: (what it is called in messages, the extensions a name may end in)
    "application/pdf": ("PDF document", frozenset({"pdf"})),
    "image/png": ("PNG image", frozenset({"png"})),
    "image/jpeg": ("JPEG image", frozenset({"jpg", "jpeg", "jpe", "jfif"})),
    "image/webp": ("WebP image", frozenset({"webp"})),
    "image/heic": ("HEIC image", frozenset({"heic", "heif", "hif"})),
    TEXT: ("plain text", frozenset({"txt", "text", "csv", "tsv", "log", "md", "json"})),
}
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_HEIF_BRANDS = {b"mif1", b"msf1", b"mif2"}
# What a browser sniffs as markup in the first bytes of a resource (WHATWG MIME Sniffing).
_MARKUP = (
    b"<!doctype html",
    b"<html",
    b"<head",
    b"<body",
    b"<script",
    b"<iframe",
    b"<svg",
    b"<style",
    b"<title",
    b"<table",
    b"<a ",
    b"<img",
    b"<object",
    b"<embed",
    b"<!--",
)
# Control characters other than tab, line feed, form feed and carriage return (NUL among them).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_TEXT_MARKUP = (*_MARKUP, b"<?xml", b"<div", b"<p>", b"<p ", b"<br", b"<font", b"<b>", b"<h1")
_EXECUTABLES = (
    (b"MZ", "Windows executable"),
    (b"\x7fELF", "ELF executable"),
    (b"\xcf\xfa\xed\xfe", "Mach-O executable"),
    (b"\xce\xfa\xed\xfe", "Mach-O executable"),
    (b"\xfe\xed\xfa\xcf", "Mach-O executable"),
    (b"\xfe\xed\xfa\xce", "Mach-O executable"),
    (b"\xca\xfe\xba\xbe", "Mach-O universal binary or Java class"),
    (b"#!", "executable script"),
)


@dataclass(frozen=True)
class Sniffed:
    content_type: str
    description: str


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    stream.seek(0)
    while chunk := stream.read(CHUNK):
        yield chunk


def _refuse(detected: str, why: str = "") -> FileTypeRefused:
    accepted = "PDF, PNG, JPEG, WebP, HEIC or plain text"
    detail = f"The file is {detected}{why}; only {accepted} is accepted."
    return FileTypeRefused(detail, detected_type=detected)


def _library_names(head: bytes) -> tuple[str, str] | None:
    """(mime type or extension, description) of puremagic's best match, or None."""
    try:
        matches = puremagic.magic_string(head)
    except (puremagic.PureError, ValueError):
        return None
    if not matches:
        return None
    best = matches[0]
    return (best.mime_type or best.extension.lstrip(".") or "unknown"), best.name


def _heif_type(head: bytes) -> str | None:
    """image/heic for an ISO-BMFF file whose brands are HEIF/HEIC (not AVIF or a video)."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return None
    box = int.from_bytes(head[0:4], "big")
    if box < 16 or box > len(head) or box % 4:
        return None
    major = head[8:12]
    compatible = {head[i : i + 4] for i in range(16, box, 4)}
    brands = {major, *compatible}
    if b"avif" in brands or b"avis" in brands:
        return None
    if major in _HEIC_BRANDS or (major in _HEIF_BRANDS and brands & _HEIC_BRANDS):
        return "image/heic"
    return None


def _binary_type(head: bytes) -> str | None:
    """An accepted binary type by its signature at offset 0, or None."""
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return _heif_type(head)


def _polyglot(head: bytes, tail: bytes) -> str | None:
    """What else an accepted binary file also is, or None."""
    lowered = head[:1024].lower()
    for marker in _MARKUP:
        if marker in lowered:
            return "HTML"
    # A ZIP (a JAR, an Office file) is read from its end record; a GIFAR or a PDF+ZIP has one.
    if b"PK\x05\x06" in tail or b"PK\x03\x04" in head[4:]:
        return "a ZIP archive"
    return None


def _check_text(stream: IO[bytes], head: bytes) -> None:
    """Plain text: UTF-8 throughout, no NUL or other control character but tab, line breaks
    and form feed, and no markup or interpreter line at its start."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    for chunk in _chunks(stream):
        try:
            text = decoder.decode(chunk)
        except UnicodeDecodeError as error:
            raise _refuse("binary data", " (not valid UTF-8 text)") from error
        if _CONTROL.search(text):
            raise _refuse("binary data", " (control characters in text)")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:
        raise _refuse("binary data", " (not valid UTF-8 text)") from error
    start = head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n\f").lower()
    if start.startswith(b"<svg") or (start.startswith(b"<?xml") and b"<svg" in start[:4096]):
        raise _refuse("an SVG image")
    if start.startswith(b"<?xml"):
        raise _refuse("an XML document")
    if start.startswith(b"#!"):
        raise _refuse("an executable script")
    if any(start.startswith(marker) for marker in _TEXT_MARKUP):
        raise _refuse("an HTML document")


def sniff(stream: IO[bytes], *, size: int, name: str) -> Sniffed:
    """The accepted type of the bytes in `stream` (read from its start, several times), or
    FileTypeRefused naming what they are."""
    stream.seek(0)
    head = stream.read(HEAD)
    stream.seek(max(0, size - TAIL))
    tail = stream.read(TAIL)
    for magic, what in _EXECUTABLES:
        if head.startswith(magic):
            raise _refuse(f"a {what}" if not what.startswith("e") else f"an {what}")
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise _refuse("a ZIP archive (or an Office document or JAR built on one)")
    content_type = _binary_type(head)
    if content_type is None:
        library = _library_names(head)
        if library is not None and library[0] in ("text/html", "html"):
            raise _refuse("an HTML document")
        if library is not None and library[0] in ("image/svg+xml", "svg"):
            raise _refuse("an SVG image")
        try:
            _check_text(stream, head)
        except FileTypeRefused:
            if library is None:
                raise
            kind, description = library
            raise _refuse(f"{description} ({kind})") from None
        content_type = TEXT
    else:
        other = _polyglot(head, tail)
        if other is not None:
            description = ACCEPTED[content_type][0]
            raise _refuse(f"a {description} that is also {other}", " (a polyglot)")
    description, extensions = ACCEPTED[content_type]
    extension = name_extension(name)
    if extension and extension not in extensions:
        raise FileTypeRefused(
            f"The name ends in .{extension} but the file is a {description}: rename it to "
            f"match its content.",
            detected_type=description,
        )
    return Sniffed(content_type=content_type, description=description)
