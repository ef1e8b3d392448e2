"""Files fixtures: a private storage folder per test, and sample files of each kind built here
(real bytes of each format, no binary fixtures in the repository)."""

import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from clientdesk.accounts.models import User
from tests.portal.conftest import integration, integration_api, portal_for

__all__ = ["integration", "integration_api", "portal_for"]


@pytest.fixture(autouse=True)
def _files_in_tmp(settings: Any, tmp_path: Path) -> Path:
    settings.FILES_URL = ""
    settings.FILES_DIR = tmp_path / "files"
    settings.FILES_CLAMD_SOCKET = ""
    return tmp_path / "files"


def png_bytes(width: int = 2, height: int = 2, *, extra: bytes = b"") -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\0" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
        + extra
    )


def pdf_bytes(text: str = "Passport") -> bytes:
    stream = f"BT /F1 12 Tf 20 20 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 50] /Contents 4 0 R >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    trailer = f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    out += trailer.encode()
    return out


def jpeg_bytes() -> bytes:
    # SOI, a JFIF APP0 segment, a comment, EOI: what every sniffer reads as JPEG.
    app0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    comment = b"scan"
    return (
        b"\xff\xd8"
        + b"\xff\xe0"
        + struct.pack(">H", len(app0) + 2)
        + app0
        + b"\xff\xfe"
        + struct.pack(">H", len(comment) + 2)
        + comment
        + b"\xff\xd9"
    )


def webp_bytes() -> bytes:
    payload = b"VP8L" + struct.pack("<I", 5) + b"\x2f\x00\x00\x00\x00" + b"\x00"
    return b"RIFF" + struct.pack("<I", 4 + len(payload)) + b"WEBP" + payload


def heic_bytes() -> bytes:
    brands = b"heic" + b"\x00\x00\x00\x00" + b"mif1" + b"heic"
    ftyp = struct.pack(">I", 8 + len(brands)) + b"ftyp" + brands
    meta = struct.pack(">I", 12) + b"meta" + b"\x00\x00\x00\x00"
    return ftyp + meta + b"\x00" * 32


SAMPLES: dict[str, tuple[str, Callable[[], bytes], str]] = {
    "pdf": ("passport.pdf", pdf_bytes, "application/pdf"),
    "png": ("photo.png", png_bytes, "image/png"),
    "jpeg": ("photo.jpg", jpeg_bytes, "image/jpeg"),
    "webp": ("photo.webp", webp_bytes, "image/webp"),
    "heic": ("IMG_0001.HEIC", heic_bytes, "image/heic"),
    "text": ("notes.txt", lambda: "Zoë's notes — résumé\n".encode(), "text/plain"),
}


def upload(name: str, data: bytes, content_type: str = "application/octet-stream") -> Any:
    return SimpleUploadedFile(name, data, content_type=content_type)


def post_file(api: APIClient, url: str, name: str, data: bytes, **extra: Any) -> Any:
    return api.post(url, {"file": upload(name, data)}, format="multipart", **extra)


@pytest.fixture
def staff_api(agent: User, api_for: Callable[[User], APIClient]) -> APIClient:
    return api_for(agent)
