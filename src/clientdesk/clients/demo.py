"""Deterministic demo clients: varied names (non-ASCII too), languages, contacts, attributes."""

import random
from typing import Any

from clientdesk.core.text import fold

# (first names, last names, language, email domain, phone prefix)
_PEOPLE = [
    (
        ["Ana", "José", "Lucía", "Mateo", "Sofía", "Álvaro"],
        ["García", "Fernández", "López", "Martínez", "Núñez"],
        "es",
        "correo.es",
        "+34 6",
    ),
    (
        ["Zoë", "Oliver", "Amelia", "Harry", "Isla", "George"],
        ["Smith", "O'Brien", "Taylor", "Brown", "Wilson"],
        "en",
        "example.co.uk",
        "+44 7",
    ),
    (
        ["Jürgen", "Lena", "Lukas", "Mia", "Jörg", "Hannah"],
        ["Müller", "Schröder", "Weiß", "Becker", "Groß"],
        "de",
        "beispiel.de",
        "+49 15",
    ),
    (
        ["Élodie", "Léa", "Hugo", "Chloé", "François", "Inès"],
        ["Dubois", "Lefèvre", "Moreau", "Girard", "Roux"],
        "fr",
        "exemple.fr",
        "+33 6",
    ),
    (
        ["Łukasz", "Zofia", "Wojciech", "Małgorzata", "Paweł"],
        ["Nowak", "Wiśniewski", "Wójcik", "Kowalczyk"],
        "pl",
        "przyklad.pl",
        "+48 5",
    ),
    (
        ["João", "Maria", "Gonçalo", "Beatriz", "Tomás"],
        ["Silva", "Gonçalves", "Conceição", "Araújo"],
        "pt",
        "exemplo.pt",
        "+351 91",
    ),
    (
        ["Søren", "Ida", "Mads", "Freja", "Anders"],
        ["Jørgensen", "Nielsen", "Ødegaard", "Hansen"],
        "da",
        "eksempel.dk",
        "+45 2",
    ),
    (["Thảo", "Minh", "Lan", "Quân"], ["Nguyễn", "Trần", "Phạm", "Lê"], "vi", "vidu.vn", "+84 9"),
    (
        ["Ελένη", "Γιώργος", "Μαρία", "Νίκος"],
        ["Παπαδοπούλου", "Κωνσταντίνου", "Αλεξίου"],
        "el",
        "paradeigma.gr",
        "+30 69",
    ),
    (
        ["Aiko", "Haruto", "Yui", "Sota"],
        ["Sato", "Suzuki", "Takahashi", "Watanabe"],
        "ja",
        "rei.jp",
        "+81 90",
    ),
    (
        ["Oğuz", "Elif", "Çağla", "Mert"],
        ["Yılmaz", "Kaya", "Şahin", "Demir"],
        "tr",
        "ornek.com.tr",
        "+90 53",
    ),
]
_TIERS = ["bronze", "silver", "gold", "platinum"]
_MANAGERS = ["Priya Raman", "Tom Becker", "Chiara Rossi", "Kwame Mensah"]
_KYC = ["verified", "pending", "documents requested"]


def _email_local(first: str, last: str) -> str:
    ascii_only = fold(f"{first}.{last}").encode("ascii", "ignore").decode()
    cleaned = "".join(ch for ch in ascii_only if ch.isalnum() or ch == ".").strip(".")
    return cleaned or "client"


def demo_clients(count: int, *, seed: int = 2026) -> list[dict[str, Any]]:
    rng = random.Random(seed)  # noqa: S311 - demo data, not secrets
    rows = []
    for n in range(1, count + 1):
        firsts, lasts, language, domain, prefix = _PEOPLE[n % len(_PEOPLE)]
        first, last = rng.choice(firsts), rng.choice(lasts)
        attributes: dict[str, Any] = {"tier": rng.choice(_TIERS)}
        if rng.random() < 0.6:
            attributes["account_manager"] = rng.choice(_MANAGERS)
        if rng.random() < 0.5:
            attributes["kyc_status"] = rng.choice(_KYC)
        rows.append(
            {
                "external_id": f"CRM-{n:06d}",
                "first_name": first,
                "last_name": last,
                # A few clients have no email, to show what strict variables do.
                "email": "" if n % 23 == 0 else f"{_email_local(first, last)}{n}@{domain}",
                "phone": "" if n % 31 == 0 else f"{prefix}{rng.randint(0, 99_999_999):08d}",
                "language": language,
                "attributes": attributes,
            }
        )
    return rows
