"""The translation catalogs of what clients read (docs/PORTAL.md, Languages): every string of the
cabinet, its script, the unsubscribe page and the portal e-mails is in every language's catalog,
translated, not fuzzy, with the same placeholders, and each committed .mo is its .po compiled
(CI has no gettext tools: a .po edited without `compilemessages` fails here)."""

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from django.conf import settings

SRC = Path(__file__).resolve().parents[2] / "src" / "clientdesk"
LANGUAGES = ["de", "fr", "es", "pt", "pt_BR"]  # settings.LANGUAGES but English, as locale names
# Per app and gettext domain: the source files whose strings clients read.
CLIENT_FACING = {
    ("portal", "django"): [
        "templates/portal/cabinet.html",
        "templates/portal/unsubscribe.html",
        "views.py",
        "services.py",  # the sign-in link e-mail
    ],
    ("portal", "djangojs"): [
        "static/portal/cabinet.js",
        "static/portal/session.js",
        "static/portal/push.js",
        "static/portal/documents.js",
    ],
    ("messaging", "django"): ["outbound.py", "push.py"],
}
CATALOGS = [(app, domain, language) for (app, domain) in CLIENT_FACING for language in LANGUAGES]
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _po(app: str, domain: str, language: str) -> Catalog:
    with (SRC / app / "locale" / language / "LC_MESSAGES" / f"{domain}.po").open("rb") as f:
        return read_po(f)


def _source_strings(app: str, path: str) -> set[str]:
    """The strings a source file marks for translation, as makemessages reads them."""
    text = (SRC / app / path).read_text()
    literal = r'"((?:[^"\\]|\\.)*)"'
    bare = r'"(?:[^"\\]|\\.)*"'
    found: set[str] = set()
    if path.endswith(".html"):
        found |= set(re.findall(r"{%\s*translate\s+[\"']([^\"']+)[\"']\s*%}", text))
        block_re = r"{%\s*blocktranslate\s*%}(.*?){%\s*endblocktranslate\s*%}"
        for block in re.findall(block_re, text, re.S):
            found.add(re.sub(r"{{\s*(\w+)\s*}}", r"%(\1)s", block))
    else:
        # gettext("a"), ngettext("a", "b", n), and Python's "a " "b" across lines
        for parts in re.findall(rf"\bn?gettext\(\s*((?:{bare}\s*)+)[,)]", text):
            found.add("".join(re.findall(literal, parts)))
    return {s.encode().decode("unicode_escape").encode("latin-1").decode() for s in found}


def _key(value: object) -> object:
    """A message's id or string, a plural's forms as a tuple (the .mo reader gives lists)."""
    return tuple(value) if isinstance(value, list | tuple) else value


def test_the_languages_are_settings_languages() -> None:
    codes = {code for code, _ in settings.LANGUAGES}
    assert codes == {"en"} | {language.lower().replace("_", "-") for language in LANGUAGES}


@pytest.mark.parametrize(("app", "domain", "language"), CATALOGS)
def test_every_string_clients_read_is_translated(app: str, domain: str, language: str) -> None:
    catalog = _po(app, domain, language)
    assert catalog.locale_identifier == language
    wanted = set()
    for path in CLIENT_FACING[(app, domain)]:
        wanted |= _source_strings(app, path)
    assert wanted, "no strings found: the extraction in this test is out of date"
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}
    missing = wanted - ids
    assert not missing, f"run makemessages (docs/PORTAL.md): {sorted(missing)}"
    for message in catalog:
        if not message.id or not any(
            location in CLIENT_FACING[(app, domain)] for location, _ in message.locations
        ):
            continue
        assert not message.fuzzy, message.id
        sources = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(strings), f"untranslated: {message.id!r}"
        for string in strings:
            assert set(PLACEHOLDER.findall(string)) == set(PLACEHOLDER.findall(sources[-1])), (
                message.id,
                string,
            )


@pytest.mark.parametrize(("app", "domain", "language"), CATALOGS)
def test_each_mo_is_its_po_compiled(app: str, domain: str, language: str) -> None:
    catalog = _po(app, domain, language)
    with (SRC / app / "locale" / language / "LC_MESSAGES" / f"{domain}.mo").open("rb") as f:
        compiled = read_mo(f)
    expected = {
        _key(message.id): _key(message.string)
        for message in catalog
        if message.id
        and not message.fuzzy
        and all(message.string if isinstance(message.string, tuple) else (message.string,))
    }
    assert {_key(m.id): _key(m.string) for m in compiled if m.id} == expected
    assert compiled.plural_forms == catalog.plural_forms
