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
from datetime import UTC, datetime, timedelta
from typing import Any

from clientdesk.core.text import fold

SEED = 20261126
DEFAULT_COUNT = 1_000_000
_EPOCH = datetime(2023, 1, 2, 8, 0, tzinfo=UTC)

# One paragraph per locale. Its first line: language, weight, phone prefix ("_" for a space),
# digits after it, share of double surnames, e-mail domains. Then its first names, "|", its
# surnames, comma-separated, Zipf rank order (line breaks only where a space was).
_LOCALES = """
en 18 +44_7 9 0 gmail.com outlook.com example.co.uk btinternet.com yahoo.co.uk
Oliver, Amelia, Harry, Isla, George, Olivia, Jack, Emily, Noah, Sophie, James, Charlotte,
William, Grace, Thomas, Chloe, Zoë, Jacob, Ava, Daniel, Ella, Samuel, Lucy, Joseph, Freya,
Matthew, Hannah, Benjamin, Poppy, Alexander, Evie, Siobhán, Niamh, Seán, Aoife, Renée | Smith,
Jones, Williams, Taylor, Brown, Davies, Evans, Wilson, Thomas, Johnson, Roberts, Robinson,
Thompson, Wright, Walker, White, Edwards, Hughes, Green, Hall, Wood, Harris, Lewis, Martin,
Jackson, Clarke, Turner, Hill, Scott, Cooper, Morris, Ward, Moore, King, Watson, Baker,
O'Brien, O'Connor, Ó Súilleabháin, MacDonald, Fitzgerald, Brontë

de 12 +49_15 9 0 gmail.com web.de gmx.de t-online.de beispiel.de
Jürgen, Lena, Lukas, Mia, Jörg, Hannah, Leon, Emma, Finn, Sophie, Paul, Marie, Jonas, Lea,
Felix, Anna, Maximilian, Laura, Elias, Lina, Ben, Clara, Günter, Bärbel, Uwe, Renate, Dieter,
Sören, Björn, Käthe | Müller, Schmidt, Schneider, Fischer, Weber, Meyer, Wagner, Becker,
Schulz, Hoffmann, Schäfer, Koch, Bauer, Richter, Klein, Wolf, Schröder, Neumann, Schwarz,
Zimmermann, Braun, Krüger, Hofmann, Hartmann, Lange, Schmitt, Werner, Weiß, Groß, Köhler,
Jäger, Böhm, Fuchs, Vogel, Günther, Roß, von Bülow

fr 10 +33_6 8 0 gmail.com orange.fr free.fr laposte.net exemple.fr
Élodie, Léa, Hugo, Chloé, François, Inès, Gabriel, Jade, Louis, Louise, Raphaël, Emma, Arthur,
Alice, Jules, Lina, Maël, Zoé, Noël, Gaëlle, Hélène, Jérôme, Céline, Benoît, Anaïs, Loïc,
Margaux, Thibault | Martin, Bernard, Dubois, Thomas, Robert, Richard, Petit, Durand, Leroy,
Moreau, Simon, Laurent, Lefèvre, Michel, Garcia, David, Bertrand, Roux, Vincent, Fournier,
Morel, Girard, André, Lefebvre, Mercier, Dupont, Lambert, Bonnet, François, Bouché, Lévêque,
Guérin, Chevalier, Faure, Rousseau, Cœur

es 10 +34_6 8 0.45 gmail.com hotmail.es yahoo.es telefonica.net correo.es
Ana, José, Lucía, Mateo, Sofía, Álvaro, Hugo, Martina, Daniel, María, Pablo, Julia, Alejandro,
Paula, Adrián, Valeria, Javier, Carmen, Iñaki, Begoña, Íñigo, Jesús, Nuria, Sergio, Rocío,
Raúl, Ramón, Inés | García, Fernández, González, Rodríguez, López, Martínez, Sánchez, Pérez,
Gómez, Martín, Jiménez, Ruiz, Hernández, Díaz, Moreno, Muñoz, Álvarez, Romero, Alonso,
Gutiérrez, Navarro, Torres, Domínguez, Vázquez, Ramos, Gil, Ramírez, Serrano, Blanco, Molina,
Núñez, Ibáñez, Peña, Castaño

it 6 +39_3 9 0 gmail.com libero.it virgilio.it alice.it esempio.it
Giulia, Francesco, Sofia, Alessandro, Aurora, Lorenzo, Ginevra, Mattia, Beatrice, Leonardo,
Niccolò, Chiara, Andrea, Federica, Luca, Elisa, Tommaso, Martina, Riccardo, Gabriele, Francesca
| Rossi, Russo, Ferrari, Esposito, Bianchi, Romano, Colombo, Ricci, Marino, Greco, Bruno,
Gallo, Conti, De Luca, Mancini, Costa, Giordano, Rizzo, Lombardi, Moretti, Barbieri, Fontana,
Santoro, Mariani, Rinaldi, Caruso, Ferrara, Galli, Martini, Leone, Longo, Gentile, Vitale,
Serra, D'Angelo

pl 6 +48_5 8 0 gmail.com wp.pl onet.pl interia.pl przyklad.pl
Łukasz, Zofia, Wojciech, Małgorzata, Paweł, Anna, Piotr, Katarzyna, Krzysztof, Agnieszka,
Tomasz, Magdalena, Michał, Joanna, Jakub, Aleksandra, Mateusz, Natalia, Bartłomiej, Żaneta,
Jędrzej, Grażyna, Stanisław, Jadwiga | Nowak, Kowalski, Wiśniewski, Wójcik, Kowalczyk,
Kamiński, Lewandowski, Zieliński, Szymański, Woźniak, Dąbrowski, Kozłowski, Jankowski, Mazur,
Kwiatkowski, Krawczyk, Piotrowski, Grabowski, Nowakowski, Pawłowski, Michalski, Król,
Wieczorek, Jabłoński, Wróbel, Majewski, Olszewski, Stępień, Górski, Rutkowski, Dudek, Zając,
Sikora, Baran, Szczepański

pt 6 +351_91 7 0.35 gmail.com sapo.pt hotmail.com uol.com.br exemplo.pt
João, Maria, Gonçalo, Beatriz, Tomás, Inês, Francisco, Leonor, Afonso, Matilde, Rodrigo,
Carolina, Martim, Mariana, Duarte, Lara, Simão, Ana, Thiago, Luísa, Vitória, Sebastião | Silva,
Santos, Ferreira, Pereira, Oliveira, Costa, Rodrigues, Martins, Jesus, Sousa, Fernandes,
Gonçalves, Gomes, Lopes, Marques, Alves, Almeida, Ribeiro, Pinto, Carvalho, Teixeira, Moreira,
Correia, Mendes, Nunes, Soares, Vieira, Monteiro, Cardoso, Rocha, Conceição, Araújo, Magalhães,
Brandão, Simões

nl 4 +31_6 8 0 gmail.com ziggo.nl kpnmail.nl voorbeeld.nl
Daan, Emma, Sem, Julia, Lucas, Mila, Levi, Tess, Finn, Sophie, Milan, Zoë, Bram, Fleur, Thijs,
Anouk, Joëlle, Sanne, Ruben, Lotte | de Jong, Jansen, de Vries, van den Berg, van Dijk, Bakker,
Janssen, Visser, Smit, Meijer, de Boer, Mulder, de Groot, Bos, Vos, Peters, Hendriks, van
Leeuwen, Dekker, Brouwer, de Wit, Dijkstra, Smits, de Graaf, van der Meer, IJzerman

da 4 +45_2 7 0 gmail.com mail.dk eksempel.dk
Søren, Ida, Mads, Freja, Anders, Sofie, Frederik, Emma, Mikkel, Clara, Rasmus, Astrid, Magnus,
Karoline, Jens, Mette, Bjørn, Kirsten, Åse | Jørgensen, Nielsen, Ødegaard, Hansen, Jensen,
Pedersen, Andersen, Christensen, Larsen, Sørensen, Rasmussen, Petersen, Madsen, Kristensen,
Olsen, Thomsen, Poulsen, Johansen, Møller, Mortensen, Østergaard, Bækgaard

sv 3 +46_70 7 0 gmail.com telia.com exempel.se
Åsa, Björn, Göran, Linnéa, Måns, Elsa, Oskar, Maja, Hugo, Alice, Axel, Ebba, Wilma, Ludvig,
Saga, Nils, Ingrid, Märta | Andersson, Johansson, Karlsson, Nilsson, Eriksson, Larsson, Olsson,
Persson, Svensson, Gustafsson, Pettersson, Jonsson, Hansson, Bengtsson, Jönsson, Lindberg,
Lindström, Lindqvist, Åberg, Öberg, Sjögren, Ström, Hägglund, Bäckström

tr 4 +90_53 8 0 gmail.com hotmail.com ornek.com.tr
Oğuz, Elif, Çağla, Mert, Zeynep, Yusuf, Ayşe, Mustafa, Emine, Ahmet, Fatma, Mehmet, Hatice,
Ali, Büşra, Gökhan, Şükrü, İbrahim, Özge, Ömer, Ülkü, Cem, Deniz | Yılmaz, Kaya, Şahin, Demir,
Çelik, Yıldız, Yıldırım, Öztürk, Aydın, Özdemir, Arslan, Doğan, Kılıç, Aslan, Çetin, Kara, Koç,
Kurt, Özkan, Şimşek, Polat, Korkmaz, Erdoğan, Güneş, Aksoy, Uçar

cs 2 +420_6 8 0 gmail.com seznam.cz centrum.cz
Jiří, Jan, Petr, Tereza, Eliška, Anežka, Tomáš, Lukáš, Kateřina, Zuzana, Vojtěch, Markéta,
Ondřej, Barbora, Matěj, Adéla | Novák, Svoboda, Novotný, Dvořák, Černý, Procházka, Kučera,
Veselý, Horák, Němec, Pokorný, Marek, Pospíšil, Hájek, Jelínek, Král, Růžička, Beneš, Fiala,
Sedláček, Doležal, Zeman, Kolář, Navrátil, Čermák

vi 3 +84_9 8 0 gmail.com yahoo.com.vn vidu.vn
Thảo, Minh, Lan, Quân, Anh, Hương, Hùng, Linh, Tuấn, Ngọc, Dũng, Trang, Phương, Đức, Hải, Thúy,
Nam, Hà, Long, Mai | Nguyễn, Trần, Lê, Phạm, Hoàng, Huỳnh, Phan, Vũ, Võ, Đặng, Bùi, Đỗ, Hồ,
Ngô, Dương, Lý

el 2 +30_69 8 0 gmail.com otenet.gr paradeigma.gr
Ελένη, Γιώργος, Μαρία, Νίκος, Δημήτρης, Κατερίνα, Γιάννης, Σοφία, Κώστας, Αικατερίνη,
Παναγιώτης, Βασιλική, Χρήστος, Ευαγγελία, Αθανάσιος, Δέσποινα | Παπαδοπούλου, Κωνσταντίνου,
Αλεξίου, Παπαδόπουλος, Γεωργίου, Νικολάου, Οικονόμου, Δημητρίου, Ιωάννου, Βασιλείου, Μακρής,
Αντωνίου, Χριστοδούλου, Παππάς, Καραγιάννης, Λαμπράκης

ru 3 +7_9 9 0 gmail.com yandex.ru mail.ru
Александр, Мария, Дмитрий, Анна, Сергей, Елена, Андрей, Ольга, Алексей, Наталья, Иван, Татьяна,
Максим, Юлия, Михаил, Екатерина, Артём, Ксения | Иванов, Смирнов, Кузнецов, Попов, Васильев,
Петров, Соколов, Михайлов, Новиков, Фёдоров, Морозов, Волков, Алексеев, Лебедев, Семёнов,
Егоров, Павлов, Козлов, Степанов, Николаев

ja 3 +81_90 8 0 gmail.com yahoo.co.jp docomo.ne.jp rei.jp
Aiko, Haruto, Yui, Sota, Yuki, Ren, Hina, Riku, Sakura, Kaito, Mei, Daiki, Yūto, Shōta, Kōki,
Ayaka, Misaki, 結衣, 陽翔, さくら | Sato, Suzuki, Takahashi, Watanabe, Tanaka, Itō, Yamamoto,
Nakamura, Kobayashi, Katō, Yoshida, Yamada, Sasaki, Yamaguchi, Matsumoto, Inoue, Kimura,
Hayashi, Shimizu, Saitō, 佐藤, 鈴木, 高橋, 田中
"""


def _locale(paragraph: str) -> tuple[str, float, str, int, float, list[str], list[list[str]]]:
    head, _, names = paragraph.partition("\n")
    language, weight, prefix, digits, double, *domains = head.split()
    lists = [[n.strip() for n in part.split(",")] for part in names.replace("\n", " ").split("|")]
    return (
        language,
        float(weight),
        prefix.replace("_", " "),
        int(digits),
        float(double),
        domains,
        lists,
    )


LOCALES = [_locale(p) for p in _LOCALES.strip().split("\n\n")]
_TIERS = ("bronze", "silver", "gold", "platinum")
_MANAGERS = ("Priya Raman", "Tom Becker", "Chiara Rossi", "Kwame Mensah", "Ingrid Nilsson")
_KYC = ("verified", "pending", "documents requested")
_LOCALE_CUM = list(itertools.accumulate(loc[1] for loc in LOCALES))
# Zipf-like: rank r has weight 1 / (r + 1) ** s; surnames are more skewed than first names.
_CUM = [
    [
        list(itertools.accumulate(1 / (r + 1) ** s for r in range(len(names))))
        for s, names in zip((0.7, 0.95), loc[6], strict=True)
    ]
    for loc in LOCALES
]


def _pick(rng: random.Random, items: list[str], cum: list[float]) -> str:
    return items[bisect.bisect_right(cum, rng.random() * cum[-1])]


def _ascii_handle(text: str) -> str:
    ascii_only = fold(text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in ascii_only if ch.isalnum() or ch == ".").strip(".")


def client_row(n: int) -> dict[str, Any]:
    """Client number `n` (1-based) of the benchmark set; the same on every call."""
    rng = random.Random(SEED * 100_000_000 + n)
    index = bisect.bisect_right(_LOCALE_CUM, rng.random() * _LOCALE_CUM[-1])
    language, _, prefix, digit_count, double, domains, (firsts, lasts) = LOCALES[index]
    first_cum, last_cum = _CUM[index]
    first = _pick(rng, firsts, first_cum)
    last = _pick(rng, lasts, last_cum)
    if rng.random() < double:
        second = _pick(rng, lasts, last_cum)
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
        email = f"{local}@{rng.choice(domains)}"

    phone = ""
    if rng.random() >= 0.04:
        digits = f"{rng.randrange(10**digit_count):0{digit_count}d}"
        phone = f"{prefix}{digits[:3]} {digits[3:]}"

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
        "language": language,
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
    return {**row, "search_text": client.search_text, "sort_name": client.sort_name}


# --- queries ------------------------------------------------------------------------

_MISSES = (  # noqa: SIM905
    "xqzvy|Zebedee Quorble|qqqq|jjxx|Wójcikowskaya|Müllerova|vvvvvv|Throgmorton|zyxw|"
    "Παπαδοπουλάκης|Ximénez-Quiroga|example.invalid|Smyth-Fortescue|ÆÐÞ|Kowalczykiewicz|"
    "no-such-client|Fitzwilliam|Brontësaurus|Nguyễnovich|qwerty ytrewq|CRM-9999999|Oxenford|"
    "Ödegaardsson|Ivanovichski"
).split("|")


def _email_query(rng: random.Random, row: dict[str, Any]) -> str | None:
    if not row["email"]:
        return None
    local, _, domain = row["email"].partition("@")
    return (
        row["email"],
        local[: max(4, len(local) - 3)],
        domain,
        f"{local[-4:]}@{domain[:3]}",
    )[rng.randrange(4)]


def _phone_query(rng: random.Random, row: dict[str, Any]) -> str | None:
    if not row["phone"]:
        return None
    if rng.random() < 0.25:
        return str(row["phone"])
    digits = "".join(ch for ch in row["phone"] if ch.isdigit())
    size = rng.choice((4, 5, 6, 7, 9))
    start = rng.randint(0, max(0, len(digits) - size))
    return digits[start : start + size]


def _two_words(rng: random.Random, row: dict[str, Any], other: dict[str, Any]) -> str:
    first, last = row["first_name"], row["last_name"].split()[0]
    return (
        f"{first} {last}",
        f"{last} {first}",
        f"{fold(first)} {fold(last)[:4]}",
        f"{first} {other['last_name'].split()[0]}",  # a combination that may not exist
    )[rng.randrange(4)]


def _accented_name(rng: random.Random, row: dict[str, Any]) -> str | None:
    """How someone types a name without the accent keys: "Müller" -> "muller"."""
    names = [n for n in (row["first_name"], row["last_name"].split()[0]) if fold(n) != n.lower()]
    return fold(rng.choice(names)) if names else None


def build_queries(count: int, *, seed: int = SEED) -> list[dict[str, str]]:
    """200 distinct, varied queries (for the default mix), built from rows in the set.

    Rows are drawn at random, so common names come up more often than rare ones, as they
    would in real use.
    """
    rng = random.Random(seed)

    def row() -> dict[str, Any]:
        return client_row(rng.randint(1, count))

    def external_id() -> str:
        ext = row()["external_id"]
        return str(ext if rng.random() < 0.5 else ext[-5:])

    mix: dict[str, tuple[int, Any]] = {  # category: (how many, how to make one)
        "first name": (24, lambda: row()["first_name"]),
        "last name": (24, lambda: row()["last_name"]),
        "accent-free": (20, lambda: _accented_name(rng, row())),
        "email fragment": (20, lambda: _email_query(rng, row())),
        "phone digits": (20, lambda: _phone_query(rng, row())),
        "external id": (20, external_id),
        "two words": (32, lambda: _two_words(rng, row(), row())),
        "short (1-2 chars)": (16, lambda: row()["last_name"][: rng.choice((1, 2))]),
        "miss": (24, iter(_MISSES).__next__),
    }
    queries: list[dict[str, str]] = []
    for category, (wanted, make) in mix.items():
        found = attempts = 0
        while found < wanted and attempts < 10_000:
            attempts += 1
            text = make()
            if text and text not in {q["q"] for q in queries}:
                queries.append({"category": category, "q": text})
                found += 1
    return queries
