"""Deterministic benchmark clients and search queries.

`client_row(n)` is a pure function of `n`, so every loader (SQLite, PostgreSQL) writes the
same million rows and the query set can be built from any row without loading the others.
Names follow a Zipf-like spread per locale (a few very common surnames, a long tail of rare
ones), with accents, ligatures and non-Latin scripts, because that is what makes search hard.
Derived columns come from `Client.refresh_derived()` itself, never from a copy of its rules.
"""

from __future__ import annotations

import bisect
import itertools
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

SEED = 20261126
DEFAULT_COUNT = 1_000_000
_EPOCH = datetime(2023, 1, 2, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Locale:
    language: str
    weight: float
    firsts: tuple[str, ...]
    lasts: tuple[str, ...]
    domains: tuple[str, ...]
    phone_prefix: str
    phone_digits: int
    double_surname: float = 0.0


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


LOCALES = (
    Locale(
        "en",
        18,
        _names(
            "Oliver, Amelia, Harry, Isla, George, Olivia, Jack, Emily, Noah, Sophie, James, "
            "Charlotte, William, Grace, Thomas, Chloe, Zoë, Jacob, Ava, Daniel, Ella, Samuel, "
            "Lucy, Joseph, Freya, Matthew, Hannah, Benjamin, Poppy, Alexander, Evie, Siobhán, "
            "Niamh, Seán, Aoife, Renée"
        ),
        _names(
            "Smith, Jones, Williams, Taylor, Brown, Davies, Evans, Wilson, Thomas, Johnson, "
            "Roberts, Robinson, Thompson, Wright, Walker, White, Edwards, Hughes, Green, Hall, "
            "Wood, Harris, Lewis, Martin, Jackson, Clarke, Turner, Hill, Scott, Cooper, Morris, "
            "Ward, Moore, King, Watson, Baker, O'Brien, O'Connor, Ó Súilleabháin, MacDonald, "
            "Fitzgerald, Brontë"
        ),
        ("gmail.com", "outlook.com", "example.co.uk", "btinternet.com", "yahoo.co.uk"),
        "+44 7",
        9,
    ),
    Locale(
        "de",
        12,
        _names(
            "Jürgen, Lena, Lukas, Mia, Jörg, Hannah, Leon, Emma, Finn, Sophie, Paul, Marie, "
            "Jonas, Lea, Felix, Anna, Maximilian, Laura, Elias, Lina, Ben, Clara, Günter, "
            "Bärbel, Uwe, Renate, Dieter, Sören, Björn, Käthe"
        ),
        _names(
            "Müller, Schmidt, Schneider, Fischer, Weber, Meyer, Wagner, Becker, Schulz, "
            "Hoffmann, Schäfer, Koch, Bauer, Richter, Klein, Wolf, Schröder, Neumann, Schwarz, "
            "Zimmermann, Braun, Krüger, Hofmann, Hartmann, Lange, Schmitt, Werner, Weiß, Groß, "
            "Köhler, Jäger, Böhm, Fuchs, Vogel, Günther, Roß, von Bülow"
        ),
        ("gmail.com", "web.de", "gmx.de", "t-online.de", "beispiel.de"),
        "+49 15",
        9,
    ),
    Locale(
        "fr",
        10,
        _names(
            "Élodie, Léa, Hugo, Chloé, François, Inès, Gabriel, Jade, Louis, Louise, Raphaël, "
            "Emma, Arthur, Alice, Jules, Lina, Maël, Zoé, Noël, Gaëlle, Hélène, Jérôme, Céline, "
            "Benoît, Anaïs, Loïc, Margaux, Thibault"
        ),
        _names(
            "Martin, Bernard, Dubois, Thomas, Robert, Richard, Petit, Durand, Leroy, Moreau, "
            "Simon, Laurent, Lefèvre, Michel, Garcia, David, Bertrand, Roux, Vincent, Fournier, "
            "Morel, Girard, André, Lefebvre, Mercier, Dupont, Lambert, Bonnet, François, "
            "Bouché, Lévêque, Guérin, Chevalier, Faure, Rousseau, Cœur"
        ),
        ("gmail.com", "orange.fr", "free.fr", "laposte.net", "exemple.fr"),
        "+33 6",
        8,
    ),
    Locale(
        "es",
        10,
        _names(
            "Ana, José, Lucía, Mateo, Sofía, Álvaro, Hugo, Martina, Daniel, María, Pablo, "
            "Julia, Alejandro, Paula, Adrián, Valeria, Javier, Carmen, Iñaki, Begoña, Íñigo, "
            "Jesús, Nuria, Sergio, Rocío, Raúl, Ramón, Inés"
        ),
        _names(
            "García, Fernández, González, Rodríguez, López, Martínez, Sánchez, Pérez, Gómez, "
            "Martín, Jiménez, Ruiz, Hernández, Díaz, Moreno, Muñoz, Álvarez, Romero, Alonso, "
            "Gutiérrez, Navarro, Torres, Domínguez, Vázquez, Ramos, Gil, Ramírez, Serrano, "
            "Blanco, Molina, Núñez, Ibáñez, Peña, Castaño"
        ),
        ("gmail.com", "hotmail.es", "yahoo.es", "telefonica.net", "correo.es"),
        "+34 6",
        8,
        double_surname=0.45,
    ),
    Locale(
        "it",
        6,
        _names(
            "Giulia, Francesco, Sofia, Alessandro, Aurora, Lorenzo, Ginevra, Mattia, Beatrice, "
            "Leonardo, Niccolò, Chiara, Andrea, Federica, Luca, Elisa, Tommaso, Martina, "
            "Riccardo, Gabriele, Francesca"
        ),
        _names(
            "Rossi, Russo, Ferrari, Esposito, Bianchi, Romano, Colombo, Ricci, Marino, Greco, "
            "Bruno, Gallo, Conti, De Luca, Mancini, Costa, Giordano, Rizzo, Lombardi, Moretti, "
            "Barbieri, Fontana, Santoro, Mariani, Rinaldi, Caruso, Ferrara, Galli, Martini, "
            "Leone, Longo, Gentile, Vitale, Serra, D'Angelo"
        ),
        ("gmail.com", "libero.it", "virgilio.it", "alice.it", "esempio.it"),
        "+39 3",
        9,
    ),
    Locale(
        "pl",
        6,
        _names(
            "Łukasz, Zofia, Wojciech, Małgorzata, Paweł, Anna, Piotr, Katarzyna, Krzysztof, "
            "Agnieszka, Tomasz, Magdalena, Michał, Joanna, Jakub, Aleksandra, Mateusz, Natalia, "
            "Bartłomiej, Żaneta, Jędrzej, Grażyna, Stanisław, Jadwiga"
        ),
        _names(
            "Nowak, Kowalski, Wiśniewski, Wójcik, Kowalczyk, Kamiński, Lewandowski, Zieliński, "
            "Szymański, Woźniak, Dąbrowski, Kozłowski, Jankowski, Mazur, Kwiatkowski, "
            "Krawczyk, Piotrowski, Grabowski, Nowakowski, Pawłowski, Michalski, Król, "
            "Wieczorek, Jabłoński, Wróbel, Majewski, Olszewski, Stępień, Górski, Rutkowski, "
            "Dudek, Zając, Sikora, Baran, Szczepański"
        ),
        ("gmail.com", "wp.pl", "onet.pl", "interia.pl", "przyklad.pl"),
        "+48 5",
        8,
    ),
    Locale(
        "pt",
        6,
        _names(
            "João, Maria, Gonçalo, Beatriz, Tomás, Inês, Francisco, Leonor, Afonso, Matilde, "
            "Rodrigo, Carolina, Martim, Mariana, Duarte, Lara, Simão, Ana, Thiago, Luísa, "
            "Vitória, Sebastião"
        ),
        _names(
            "Silva, Santos, Ferreira, Pereira, Oliveira, Costa, Rodrigues, Martins, Jesus, "
            "Sousa, Fernandes, Gonçalves, Gomes, Lopes, Marques, Alves, Almeida, Ribeiro, "
            "Pinto, Carvalho, Teixeira, Moreira, Correia, Mendes, Nunes, Soares, Vieira, "
            "Monteiro, Cardoso, Rocha, Conceição, Araújo, Magalhães, Brandão, Simões"
        ),
        ("gmail.com", "sapo.pt", "hotmail.com", "uol.com.br", "exemplo.pt"),
        "+351 91",
        7,
        double_surname=0.35,
    ),
    Locale(
        "nl",
        4,
        _names(
            "Daan, Emma, Sem, Julia, Lucas, Mila, Levi, Tess, Finn, Sophie, Milan, Zoë, Bram, "
            "Fleur, Thijs, Anouk, Joëlle, Sanne, Ruben, Lotte"
        ),
        _names(
            "de Jong, Jansen, de Vries, van den Berg, van Dijk, Bakker, Janssen, Visser, Smit, "
            "Meijer, de Boer, Mulder, de Groot, Bos, Vos, Peters, Hendriks, van Leeuwen, "
            "Dekker, Brouwer, de Wit, Dijkstra, Smits, de Graaf, van der Meer, IJzerman"
        ),
        ("gmail.com", "ziggo.nl", "kpnmail.nl", "voorbeeld.nl"),
        "+31 6",
        8,
    ),
    Locale(
        "da",
        4,
        _names(
            "Søren, Ida, Mads, Freja, Anders, Sofie, Frederik, Emma, Mikkel, Clara, Rasmus, "
            "Astrid, Magnus, Karoline, Jens, Mette, Bjørn, Kirsten, Åse"
        ),
        _names(
            "Jørgensen, Nielsen, Ødegaard, Hansen, Jensen, Pedersen, Andersen, Christensen, "
            "Larsen, Sørensen, Rasmussen, Petersen, Madsen, Kristensen, Olsen, Thomsen, "
            "Poulsen, Johansen, Møller, Mortensen, Østergaard, Bækgaard"
        ),
        ("gmail.com", "mail.dk", "eksempel.dk"),
        "+45 2",
        7,
    ),
    Locale(
        "sv",
        3,
        _names(
            "Åsa, Björn, Göran, Linnéa, Måns, Elsa, Oskar, Maja, Hugo, Alice, Axel, Ebba, "
            "Wilma, Ludvig, Saga, Nils, Ingrid, Märta"
        ),
        _names(
            "Andersson, Johansson, Karlsson, Nilsson, Eriksson, Larsson, Olsson, Persson, "
            "Svensson, Gustafsson, Pettersson, Jonsson, Hansson, Bengtsson, Jönsson, Lindberg, "
            "Lindström, Lindqvist, Åberg, Öberg, Sjögren, Ström, Hägglund, Bäckström"
        ),
        ("gmail.com", "telia.com", "exempel.se"),
        "+46 70",
        7,
    ),
    Locale(
        "tr",
        4,
        _names(
            "Oğuz, Elif, Çağla, Mert, Zeynep, Yusuf, Ayşe, Mustafa, Emine, Ahmet, Fatma, "
            "Mehmet, Hatice, Ali, Büşra, Gökhan, Şükrü, İbrahim, Özge, Ömer, Ülkü, Cem, Deniz"
        ),
        _names(
            "Yılmaz, Kaya, Şahin, Demir, Çelik, Yıldız, Yıldırım, Öztürk, Aydın, Özdemir, "
            "Arslan, Doğan, Kılıç, Aslan, Çetin, Kara, Koç, Kurt, Özkan, Şimşek, Polat, "
            "Korkmaz, Erdoğan, Güneş, Aksoy, Uçar"
        ),
        ("gmail.com", "hotmail.com", "ornek.com.tr"),
        "+90 53",
        8,
    ),
    Locale(
        "cs",
        2,
        _names(
            "Jiří, Jan, Petr, Tereza, Eliška, Anežka, Tomáš, Lukáš, Kateřina, Zuzana, "
            "Vojtěch, Markéta, Ondřej, Barbora, Matěj, Adéla"
        ),
        _names(
            "Novák, Svoboda, Novotný, Dvořák, Černý, Procházka, Kučera, Veselý, Horák, Němec, "
            "Pokorný, Marek, Pospíšil, Hájek, Jelínek, Král, Růžička, Beneš, Fiala, Sedláček, "
            "Doležal, Zeman, Kolář, Navrátil, Čermák"
        ),
        ("gmail.com", "seznam.cz", "centrum.cz"),
        "+420 6",
        8,
    ),
    Locale(
        "vi",
        3,
        _names(
            "Thảo, Minh, Lan, Quân, Anh, Hương, Hùng, Linh, Tuấn, Ngọc, Dũng, Trang, Phương, "
            "Đức, Hải, Thúy, Nam, Hà, Long, Mai"
        ),
        _names(
            "Nguyễn, Trần, Lê, Phạm, Hoàng, Huỳnh, Phan, Vũ, Võ, Đặng, Bùi, Đỗ, Hồ, Ngô, Dương, Lý"
        ),
        ("gmail.com", "yahoo.com.vn", "vidu.vn"),
        "+84 9",
        8,
    ),
    Locale(
        "el",
        2,
        _names(
            "Ελένη, Γιώργος, Μαρία, Νίκος, Δημήτρης, Κατερίνα, Γιάννης, Σοφία, Κώστας, "
            "Αικατερίνη, Παναγιώτης, Βασιλική, Χρήστος, Ευαγγελία, Αθανάσιος, Δέσποινα"
        ),
        _names(
            "Παπαδοπούλου, Κωνσταντίνου, Αλεξίου, Παπαδόπουλος, Γεωργίου, Νικολάου, "
            "Οικονόμου, Δημητρίου, Ιωάννου, Βασιλείου, Μακρής, Αντωνίου, Χριστοδούλου, "
            "Παππάς, Καραγιάννης, Λαμπράκης"
        ),
        ("gmail.com", "otenet.gr", "paradeigma.gr"),
        "+30 69",
        8,
    ),
    Locale(
        "ru",
        3,
        _names(
            "Александр, Мария, Дмитрий, Анна, Сергей, Елена, Андрей, Ольга, Алексей, "
            "Наталья, Иван, Татьяна, Максим, Юлия, Михаил, Екатерина, Артём, Ксения"
        ),
        _names(
            "Иванов, Смирнов, Кузнецов, Попов, Васильев, Петров, Соколов, Михайлов, Новиков, "
            "Фёдоров, Морозов, Волков, Алексеев, Лебедев, Семёнов, Егоров, Павлов, Козлов, "
            "Степанов, Николаев"
        ),
        ("gmail.com", "yandex.ru", "mail.ru"),
        "+7 9",
        9,
    ),
    Locale(
        "ja",
        3,
        _names(
            "Aiko, Haruto, Yui, Sota, Yuki, Ren, Hina, Riku, Sakura, Kaito, Mei, Daiki, "
            "Yūto, Shōta, Kōki, Ayaka, Misaki, 結衣, 陽翔, さくら"
        ),
        _names(
            "Sato, Suzuki, Takahashi, Watanabe, Tanaka, Itō, Yamamoto, Nakamura, Kobayashi, "
            "Katō, Yoshida, Yamada, Sasaki, Yamaguchi, Matsumoto, Inoue, Kimura, Hayashi, "
            "Shimizu, Saitō, 佐藤, 鈴木, 高橋, 田中"
        ),
        ("gmail.com", "yahoo.co.jp", "docomo.ne.jp", "rei.jp"),
        "+81 90",
        8,
    ),
)

_TIERS = ("bronze", "silver", "gold", "platinum")
_MANAGERS = ("Priya Raman", "Tom Becker", "Chiara Rossi", "Kwame Mensah", "Ingrid Nilsson")
_KYC = ("verified", "pending", "documents requested")


def _cumulative(weights: list[float]) -> list[float]:
    return list(itertools.accumulate(weights))


_LOCALE_CUM = _cumulative([loc.weight for loc in LOCALES])
# Zipf-like: rank r has weight 1 / (r + 1) ** s; surnames are more skewed than first names.
_FIRST_CUM = [_cumulative([1 / (r + 1) ** 0.7 for r in range(len(x.firsts))]) for x in LOCALES]
_LAST_CUM = [_cumulative([1 / (r + 1) ** 0.95 for r in range(len(x.lasts))]) for x in LOCALES]


def _pick(rng: random.Random, items: tuple[str, ...], cum: list[float]) -> str:
    return items[bisect.bisect_right(cum, rng.random() * cum[-1])]


def _ascii_handle(text: str) -> str:
    from clientdesk.core.text import fold

    ascii_only = fold(text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in ascii_only if ch.isalnum() or ch == ".").strip(".")


def client_row(n: int) -> dict[str, Any]:
    """Client number `n` (1-based) of the benchmark set; the same on every call."""
    rng = random.Random(SEED * 100_000_000 + n)
    index = bisect.bisect_right(_LOCALE_CUM, rng.random() * _LOCALE_CUM[-1])
    loc = LOCALES[index]
    first = _pick(rng, loc.firsts, _FIRST_CUM[index])
    last = _pick(rng, loc.lasts, _LAST_CUM[index])
    if rng.random() < loc.double_surname:
        second = _pick(rng, loc.lasts, _LAST_CUM[index])
        if second != last:
            last = f"{last} {second}"

    email = ""
    if rng.random() >= 0.05:
        f, surname = _ascii_handle(first), _ascii_handle(last.replace(" ", ""))
        style = rng.randrange(5)
        if not f or not surname:
            local = f"client{n}"
        elif style == 0:
            local = f"{f}.{surname}"
        elif style == 1:
            local = f"{f}{surname}{rng.randrange(100)}"
        elif style == 2:
            local = f"{f[0]}.{surname}{rng.randrange(1950, 2006)}"
        elif style == 3:
            local = f"{surname}.{f}{rng.randrange(1000)}"
        else:
            local = f"{f}_{n}"
        email = f"{local}@{rng.choice(loc.domains)}"

    phone = ""
    if rng.random() >= 0.04:
        digits = f"{rng.randrange(10**loc.phone_digits):0{loc.phone_digits}d}"
        phone = f"{loc.phone_prefix}{digits[:3]} {digits[3:]}"

    attributes: dict[str, Any] = {"tier": rng.choice(_TIERS)}
    if rng.random() < 0.6:
        attributes["account_manager"] = rng.choice(_MANAGERS)
    if rng.random() < 0.5:
        attributes["kyc_status"] = rng.choice(_KYC)
    created = _EPOCH + timedelta(seconds=n * 90 + rng.randrange(90))
    return {
        "id": uuid.UUID(int=rng.getrandbits(128), version=4),
        "external_id": f"CRM-{n:07d}",
        "first_name": first,
        "last_name": last,
        "email": email,
        "phone": phone,
        "language": loc.language,
        "attributes": attributes,
        "created_at": created,
        "updated_at": created,
    }


def client_values(n: int) -> dict[str, Any]:
    """`client_row(n)` plus the derived columns, computed by the model's own method."""
    from clientdesk.clients.models import Client

    row = client_row(n)
    client = Client(**row)
    client.refresh_derived()
    row["search_text"] = client.search_text
    row["sort_name"] = client.sort_name
    return row


# --- queries ------------------------------------------------------------------------

QUERY_MIX = {
    "first name": 24,
    "last name": 24,
    "accent-free": 20,
    "email fragment": 20,
    "phone digits": 20,
    "external id": 20,
    "two words": 32,
    "short (1-2 chars)": 16,
    "miss": 24,
}

_MISSES = (
    "xqzvy",
    "Zebedee Quorble",
    "qqqq",
    "jjxx",
    "Wójcikowskaya",
    "Müllerova",
    "vvvvvv",
    "Throgmorton",
    "zyxw",
    "Παπαδοπουλάκης",
    "Ximénez-Quiroga",
    "example.invalid",
    "Smyth-Fortescue",
    "ÆÐÞ",
    "Kowalczykiewicz",
    "no-such-client",
    "Fitzwilliam",
    "Brontësaurus",
    "Nguyễnovich",
    "qwerty ytrewq",
    "CRM-9999999",
    "Oxenford",
    "Ödegaardsson",
    "Ivanovichski",
)


def _fold(text: str) -> str:
    from clientdesk.core.text import fold

    return fold(text)


def _accent_free(name: str) -> str:
    """How someone types a name without the accent keys: "Müller" -> "muller"."""
    return _fold(name)


def _email_query(rng: random.Random, row: dict[str, Any]) -> str | None:
    if not row["email"]:
        return None
    local, _, domain = row["email"].partition("@")
    kind = rng.randrange(4)
    if kind == 0:
        return row["email"]
    if kind == 1:
        return local[: max(4, len(local) - 3)]
    if kind == 2:
        return domain
    return f"{local[-4:]}@{domain[:3]}"


def _phone_query(rng: random.Random, row: dict[str, Any]) -> str | None:
    if not row["phone"]:
        return None
    if rng.random() < 0.25:
        return row["phone"]
    digits = "".join(ch for ch in row["phone"] if ch.isdigit())
    size = rng.choice((4, 5, 6, 7, 9))
    start = rng.randint(0, max(0, len(digits) - size))
    return digits[start : start + size]


def _two_words(rng: random.Random, row: dict[str, Any], other: dict[str, Any]) -> str:
    first, last = row["first_name"], row["last_name"].split()[0]
    style = rng.randrange(4)
    if style == 0:
        return f"{first} {last}"
    if style == 1:
        return f"{last} {first}"
    if style == 2:
        return f"{_fold(first)} {_fold(last)[:4]}"
    return f"{first} {other['last_name'].split()[0]}"  # a combination that may not exist


def _accented_name(rng: random.Random, row: dict[str, Any]) -> str | None:
    names = [n for n in (row["first_name"], row["last_name"].split()[0]) if _fold(n) != n.lower()]
    return _fold(rng.choice(names)) if names else None


def build_queries(count: int, *, seed: int = SEED) -> list[dict[str, str]]:
    """200 distinct, varied queries (for the default mix), built from rows in the set.

    Rows are drawn at random, so common names come up more often than rare ones, as they
    would in real use.
    """
    rng = random.Random(seed)

    def row() -> dict[str, Any]:
        return client_row(rng.randint(1, count))

    makers: dict[str, Any] = {
        "first name": lambda: row()["first_name"],
        "last name": lambda: row()["last_name"],
        "accent-free": lambda: _accented_name(rng, row()),
        "email fragment": lambda: _email_query(rng, row()),
        "phone digits": lambda: _phone_query(rng, row()),
        "external id": lambda: (lambda ext: ext if rng.random() < 0.5 else ext[-5:])(
            row()["external_id"]
        ),
        "two words": lambda: _two_words(rng, row(), row()),
        "short (1-2 chars)": lambda: row()["last_name"][: rng.choice((1, 2))],
    }
    queries: list[dict[str, str]] = []
    seen: set[str] = set()
    for category, wanted in QUERY_MIX.items():
        make = makers[category] if category != "miss" else iter(_MISSES).__next__
        found = attempts = 0
        while found < wanted and attempts < 10_000:
            attempts += 1
            text = make()
            if text and text not in seen:
                seen.add(text)
                queries.append({"category": category, "q": text})
                found += 1
    return queries
