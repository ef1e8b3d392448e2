"""The name a file is shown and downloaded under: no path, no control or bidi characters, at
most 255 characters, the extension kept when it is cut."""

import re
import unicodedata

MAX_NAME = 255
FALLBACK = "file"
_EXTENSION = re.compile(r"\.([A-Za-z][A-Za-z0-9]{0,7})$")


def name_clean(raw: str) -> str:
    """Cleaned for display and for `Content-Disposition`; the stored bytes never depend on it."""
    text = raw.encode("utf-8", "replace").decode("utf-8") if raw else ""
    # Any folder part (either slash) is dropped: only the last segment names the file.
    text = re.split(r"[\\/]", text)[-1]
    text = unicodedata.normalize("NFC", text)
    # Cc: controls (NUL, newlines, ESC), Cf: format (the bidi overrides and isolates, zero-width),
    # Cs: lone surrogates, Co/Cn: private and unassigned, Zl/Zp: line and paragraph separators.
    kept = "".join(
        " " if unicodedata.category(ch) in ("Zs",) else ch
        for ch in text
        if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
    )
    kept = re.sub(r" {2,}", " ", kept).strip(" .")
    if not kept:
        return FALLBACK
    if len(kept) > MAX_NAME:
        match = _EXTENSION.search(kept)
        suffix = match.group(0) if match else ""
        kept = kept[: MAX_NAME - len(suffix)].rstrip(" .") + suffix
    return kept


def name_extension(name: str) -> str:
    """The extension in lower case without the dot, or "" when the name has none (a final part
    of digits, as in "scan 12.05.2026", is not one)."""
    match = _EXTENSION.search(name)
    return match.group(1).lower() if match else ""
