"""A second labelled corpus for the PII redactor, built apart from the first: no Faker, values
from hand-written lists and small generators (Luhn, mod-97 and ISBN check digits computed
here), prompts written as multi-line messages, JSON, code and signature blocks, names in
running text rather than greetings, and a distractor set of number-bearing sentences that hold
no personal data (timestamps, ISBNs, ids, prices, measurements, coordinates, ports, code).

    python -m bench.pii_corpus2 --n 5 --seed 1     # print a few

Written before the name recognizer it measures, and not tuned against (bench/pii_corpus.py
is the one the recognizers were tuned on).
"""

from __future__ import annotations

import argparse
import json
import random
import string
import uuid
from collections.abc import Callable

from .pii_corpus import Sample, _Builder, dump

__all__ = ["DISTRACTOR_KINDS", "generate", "generate_distractors", "generate_held_out"]


def _split(text: str) -> list[str]:
    return text.split()


FIRST = _split(
    "Priya Aarav Ananya Rohan Meera Vikram Chinedu Ngozi Emeka Amara Kwame Abena Oluwaseun "
    "Fatima Omar Layla Yusuf Leila Hamid Mei Wei Jian Hiroshi Yuki Haruto Sakura Minjun Jisoo "
    "Thanh Linh Siddharth Kavya Lucas Sofia Mateo Valentina Camila Diego Joaquim Beatriz "
    "Ingrid Lars Sven Astrid Freya Magnus Katarzyna Piotr Agnieszka Tomasz Ewa Jan Zofia "
    "Margot Henri Amélie Étienne Giulia Lorenzo Chiara Matteo Elena Pablo Lucía Javier "
    "Nadia Dmitri Olga Tatiana Anneke Joost Femke Bram Hannah Jonas Lena Felix Emily Jacob "
    "Olivia Ethan Grace Daniel Charlotte Samuel Chloe Nathan Zoe Isaac Ruth Declan Siobhan"
)
LAST = _split(
    "Raman Sharma Iyer Gupta Reddy Nair Okafor Adeyemi Eze Mensah Boateng Okonkwo Haddad "
    "Khalil Rahman Hosseini Tanaka Suzuki Watanabe Kim Park Nguyen Tran Chen Zhang Wang "
    "Fernandes Oliveira Costa Almeida Rodríguez González Herrera Morales Castillo Lindqvist "
    "Johansson Andersen Nieminen Kowalski Nowak Wiśniewska Dubois Lefèvre Moreau Rossi "
    "Bianchi Ferrari Esposito Romano Navarro Ortega Ivanova Petrov Jansen Bakker Visser "
    "Schneider Fischer Weber Hoffmann Becker Thompson Mitchell Campbell Robinson Carter "
    "Murphy O'Brien Gallagher Walsh Patel Shah Mehta Goldberg Cohen Friedman Novak Horvat"
)
TITLES = ("Dr.", "Dr", "Prof.", "Mr.", "Ms.", "Mrs.", "Herr", "Frau", "Mme", "Sr.", "Sra.")
ROLES = ("Head of Operations", "Senior Product Manager", "Staff Engineer", "Account Executive",
         "Customer Success Lead", "VP Finance", "Data Scientist")  # fmt: skip
COMPANIES = ("Northwind Traders", "Globex", "Initech", "Umbrella Logistics", "Blue Harbor GmbH",
             "Zenith Analytics", "Aurora Health")  # fmt: skip
DOMAINS = ("fastmail.com", "posteo.de", "proton.me", "outlook.fr", "libero.it", "gmx.net",
           "company.co.uk", "acme.io", "uni-heidelberg.de", "example.org")  # fmt: skip


def _full(r: random.Random) -> str:
    return f"{r.choice(FIRST)} {r.choice(LAST)}"


def _email(r: random.Random) -> str:
    first, last = r.choice(FIRST).lower(), r.choice(LAST).lower().replace("'", "")
    local = r.choice([f"{first}.{last}", f"{first[0]}.{last}", f"{first}_{last}{r.randrange(99)}",
                      f"{last}+billing", f"{first}"])  # fmt: skip
    return f"{local}@{r.choice(DOMAINS)}"


def _d(r: random.Random, n: int) -> str:
    return "".join(r.choice(string.digits) for _ in range(n))


# Each country's numbers in the forms people write them (national and international), from
# the numbering plans' published ranges (mobiles, capitals), written by hand here.
PHONES: tuple[Callable[[random.Random], str], ...] = (
    lambda r: f"({r.choice(['212', '415', '617'])}) {r.randrange(200, 999)}-{_d(r, 4)}",
    lambda r: f"{r.choice(['646', '510', '303'])}-{r.randrange(200, 999)}-{_d(r, 4)}",
    lambda r: f"+1 {r.choice(['416', '604', '514'])} {r.randrange(200, 999)} {_d(r, 4)}",
    lambda r: f"07{r.choice('3456789')}{_d(r, 2)} {_d(r, 6)}",
    lambda r: f"+44 20 7{_d(r, 3)} {_d(r, 4)}",
    lambda r: f"0151 {_d(r, 8)}",
    lambda r: f"+49 30 {_d(r, 8)}",
    lambda r: f"06 {_d(r, 2)} {_d(r, 2)} {_d(r, 2)} {_d(r, 2)}",
    lambda r: f"+33 1 {_d(r, 2)} {_d(r, 2)} {_d(r, 2)} {_d(r, 2)}",
    lambda r: f"347 {_d(r, 3)} {_d(r, 4)}",
    lambda r: f"+39 06 {_d(r, 4)} {_d(r, 4)}",
    lambda r: f"6{_d(r, 2)} {_d(r, 3)} {_d(r, 3)}",
    lambda r: f"+34 91 {_d(r, 3)} {_d(r, 2)} {_d(r, 2)}",
    lambda r: f"06-{_d(r, 8)}",
    lambda r: f"+31 20 {_d(r, 3)} {_d(r, 4)}",
    lambda r: f"+91 9{_d(r, 4)} {_d(r, 5)}",
    lambda r: f"04{_d(r, 2)} {_d(r, 3)} {_d(r, 3)}",
    lambda r: f"(02) {_d(r, 4)} {_d(r, 4)}",
    lambda r: f"(11) 9{_d(r, 4)}-{_d(r, 4)}",
    lambda r: f"079 {_d(r, 3)} {_d(r, 2)} {_d(r, 2)}",
    lambda r: f"+41 44 {_d(r, 3)} {_d(r, 2)} {_d(r, 2)}",
)


def _luhn_complete(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        n = int(ch)
        if i % 2 == 0:  # these positions are doubled once the check digit is appended
            n = n * 2 - 9 if n * 2 > 9 else n * 2
        total += n
    return body + str((10 - total % 10) % 10)


def _card(r: random.Random) -> str:
    prefix, length = r.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15),
                               ("37", 15), ("6011", 16)])  # fmt: skip
    digits = _luhn_complete(prefix + _d(r, length - len(prefix) - 1))
    sep = r.choice([" ", "-", ""])
    groups = [4, 6, 5] if length == 15 else [4, 4, 4, 4]
    out, i = [], 0
    for g in groups:
        out.append(digits[i : i + g])
        i += g
    return sep.join(out)


_BBAN = {"DE": 18, "FR": 23, "NL": None, "ES": 20, "IT": None, "CH": 17, "AT": 16, "BE": 12,
         "PL": 24, "GB": None}  # fmt: skip


def _ccc_digit(digits: str) -> str:
    weights = (1, 2, 4, 8, 5, 10, 9, 7, 3, 6)
    check = 11 - sum(w * int(c) for w, c in zip(weights, digits, strict=True)) % 11
    return str({10: 1, 11: 0}.get(check, check))


def _iban(r: random.Random) -> str:
    country = r.choice(list(_BBAN))
    if country == "NL":
        bban = r.choice(["ABNA", "INGB", "RABO"]) + _d(r, 10)
    elif country == "GB":
        bban = r.choice(["NWBK", "BARC", "LOYD"]) + _d(r, 14)
    elif country == "IT":
        bban = "X" + _d(r, 10) + _d(r, 12)
    elif country == "BE":  # the account's own check: its first 10 digits mod 97
        head = r.choice(["001", "063", "310", "363", "735"]) + _d(r, 7)  # real banks
        bban = head + f"{int(head) % 97 or 97:02d}"
    elif country == "ES":  # bank, branch, two check digits (weights of the CCC), account
        bank, account = _d(r, 8), _d(r, 10)
        bban = bank + _ccc_digit("00" + bank) + _ccc_digit(account) + account
    else:
        bban = _d(r, _BBAN[country] or 0)
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    iban = f"{country}{check:02d}{bban}"
    if r.random() < 0.5:
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


def _ssn(r: random.Random) -> str:
    area = r.choice([n for n in range(1, 900) if n != 666])
    sep = r.choice(["-", " "])
    return f"{area:03d}{sep}{r.randrange(1, 100):02d}{sep}{r.randrange(1, 10000):04d}"


def _ip(r: random.Random) -> str:
    if r.random() < 0.6:
        return f"{r.randrange(11, 223)}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"
    groups = [f"{r.randrange(65536):x}" for _ in range(4)]
    return f"2001:db8:{':'.join(groups[:2])}::{groups[3]}"


def _secret(r: random.Random) -> str:
    alnum = string.ascii_letters + string.digits
    tok = lambda n: "".join(r.choice(alnum) for _ in range(n))  # noqa: E731
    return r.choice([
        "sk-" + tok(48), "ghp_" + tok(36), "glpat-" + tok(20), "xoxp-" + _d(r, 12) + "-" + tok(24),
        "AKIA" + "".join(r.choice(string.ascii_uppercase + string.digits) for _ in range(16)),
        "github_pat_" + tok(22) + "_" + tok(59), "rk_live_" + tok(32), "sk-ant-api03-" + tok(90),
    ])  # fmt: skip


Template = Callable[[_Builder, random.Random], _Builder]

TEMPLATES: list[Template] = [
    # names in running text
    lambda b, r: (
        b.text("Please forward this to ").value(_full(r), "PERSON").text(" before Friday.")
    ),
    lambda b, r: (
        b.text(f"{r.choice(TITLES)} ")
        .value(r.choice(LAST), "PERSON")
        .text(" said the lab results from batch 4471 look normal.")
    ),
    lambda b, r: (
        b.text("Summarise the meeting: ")
        .value(_full(r), "PERSON")
        .text(" and ")
        .value(_full(r), "PERSON")
        .text(" agreed to ship v2.3 on 2024-11-04.")
    ),
    lambda b, r: (
        b.text("Can you ask ").value(_full(r), "PERSON").text(" whether the Q3 numbers are final?")
    ),
    lambda b, r: (
        b.text("Thanks for the update.\n\n--\n")
        .value(_full(r), "PERSON")
        .text(f"\n{r.choice(ROLES)}, {r.choice(COMPANIES)}")
    ),
    lambda b, r: (
        b.text('Extract the fields from: {"name": "')
        .value(_full(r), "PERSON")
        .text(f'", "order_id": {r.randrange(10**6, 10**9)}, "status": "shipped"}}')
    ),
    lambda b, r: (
        b.text("Translate into German: ")
        .value(_full(r), "PERSON")
        .text(" will present the roadmap tomorrow.")
    ),
    lambda b, r: (
        b.text("The complaint was filed by ")
        .value(_full(r), "PERSON")
        .text(f" against {r.choice(COMPANIES)} last week.")
    ),
    lambda b, r: (
        b.text("cc ")
        .value(_full(r), "PERSON")
        .text(" and ")
        .value(_email(r), "EMAIL_ADDRESS")
        .text(" on the thread.")
    ),
    # structured values, in other shapes than the first corpus
    lambda b, r: (
        b.text("Customer record:\n- email: ")
        .value(_email(r), "EMAIL_ADDRESS")
        .text("\n- mobile: ")
        .value(r.choice(PHONES)(r), "PHONE_NUMBER")
        .text(f"\n- tier: gold\n- since: {r.randrange(2001, 2024)}")
    ),
    lambda b, r: (
        b.text("He left a voicemail, please call him back at ")
        .value(r.choice(PHONES)(r), "PHONE_NUMBER")
        .text(" today.")
    ),
    lambda b, r: (
        b.text('{"contact": {"phone": "')
        .value(r.choice(PHONES)(r), "PHONE_NUMBER")
        .text('", "mail": "')
        .value(_email(r), "EMAIL_ADDRESS")
        .text('"}}')
    ),
    lambda b, r: (
        b.text("Why was ").value(_card(r), "CREDIT_CARD").text(" declined for the $49.00 renewal?")
    ),
    lambda b, r: (
        b.text("Payout account: ")
        .value(_iban(r), "IBAN_CODE")
        .text(f" (reference INV-{r.randrange(1000, 99999)})")
    ),
    lambda b, r: (
        b.text("Verify the applicant, social security no. ")
        .value(_ssn(r), "US_SSN")
        .text(", before onboarding.")
    ),
    lambda b, r: (
        b.text("nginx: client ")
        .value(_ip(r), "IP_ADDRESS")
        .text(" sent 413 on /upload (1.2 MB body) at port 8443")
    ),
    lambda b, r: (
        b.text('import os\nclient = Client(api_key="')
        .value(_secret(r), "SECRET")
        .text('")\nprint(client.models())')
    ),
]

# -- distractors: number-bearing text with no personal data ----------------------------------


def _isbn13(r: random.Random) -> str:
    body = "978" + _d(r, 9)
    check = (10 - sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body)) % 10) % 10
    d = body + str(check)
    return f"{d[:3]}-{d[3]}-{d[4:6]}-{d[6:12]}-{d[12]}" if r.random() < 0.6 else d


def _isbn10(r: random.Random) -> str:
    body = _d(r, 9)
    check = sum((10 - i) * int(c) for i, c in enumerate(body)) % 11
    c = "X" if (11 - check) % 11 == 10 else str((11 - check) % 11)
    return f"{body[0]}-{body[1:4]}-{body[4:9]}-{c}"


DISTRACTOR_KINDS: dict[str, Callable[[random.Random], str]] = {
    "unix_seconds": lambda r: (
        f"The job started at {r.randrange(1_500_000_000, 1_800_000_000)} and has not finished."
    ),
    "unix_millis": lambda r: f'{{"event": "click", "ts": {r.randrange(15 * 10**11, 18 * 10**11)}}}',
    "iso_datetime": lambda r: (
        f"Deadline: {r.randrange(2020, 2030)}-{r.randrange(1, 13):02d}-"
        f"{r.randrange(1, 29):02d}T{r.randrange(24):02d}:{r.randrange(60):02d}:00Z, no extensions."
    ),
    "isbn": lambda r: f"Cite the book with ISBN {_isbn13(r) if r.random() < 0.6 else _isbn10(r)}.",
    "uuid": lambda r: f"Trace {uuid.UUID(int=r.getrandbits(128))} failed after 3 retries.",
    "hash": lambda r: f"Expected sha256 {r.getrandbits(256):064x}, got something else.",
    "version": lambda r: (
        f"Upgrade from {r.randrange(1, 9)}.{r.randrange(30)}.{r.randrange(20)} to "
        f"{r.randrange(1, 9)}.{r.randrange(30)}.{r.randrange(20)}.{r.randrange(9999)} tonight."
    ),
    "order": lambda r: f"Order {r.randrange(10**8, 10**10)} was split into two parcels.",
    "invoice": lambda r: (
        f"Invoice no. {r.randrange(2020, 2026)}-{_d(r, 6)} is overdue by {r.randrange(2, 40)} days."
    ),
    "tracking": lambda r: r.choice(
        [
            f"Tracking: 1Z{_d(r, 3)}AA{_d(r, 10)}",
            f"FedEx tracking number {_d(r, 12)}",
            f"USPS tracking {r.choice(['9400', '9205'])} "
            f"{_d(r, 4)} {_d(r, 4)} {_d(r, 4)} {_d(r, 4)} {_d(r, 2)}",
        ]
    ),
    "price": lambda r: (
        f"The plan costs €{r.randrange(10, 9999):,}.{_d(r, 2)} per year, or "
        f"${r.randrange(1, 999)}.99 a month."
    ),
    "measurement": lambda r: (
        f"The panel is {r.randrange(100, 2500)} mm x {r.randrange(100, 2500)} "
        f"mm and weighs {r.randrange(1, 90)}.{r.randrange(10)} kg."
    ),
    "coordinates": lambda r: f"Meet at {r.uniform(-80, 80):.6f}, {r.uniform(-170, 170):.6f}.",
    "port": lambda r: (
        f"The service listens on 0.0.0.0:{r.randrange(1024, 65535)} and "
        f"127.0.0.1:{r.randrange(1024, 65535)}."
    ),
    "duration": lambda r: (
        f"It took {r.randrange(1000, 99999999)} ms ({r.randrange(1, 99)} h "
        f"{r.randrange(60)} min) to index {r.randrange(10**6, 10**9):,} rows."
    ),
    "code": lambda r: r.choice(
        [
            f"for i in range({r.randrange(10**6, 10**10)}):\n"
            f"    total += i % {r.randrange(7, 997)}",
            f"time.sleep({r.randrange(1, 86400)}); assert n == {r.randrange(10**7, 10**11)}",
            f"const MAX = {r.randrange(10**8, 10**12)}; // bytes",
        ]
    ),
    "json_ids": lambda r: json.dumps(
        {
            "user_id": r.randrange(10**6, 10**10),
            "session": _d(r, 10),
            "created_at": r.randrange(1_500_000_000, 1_800_000_000),
            "amount_cents": r.randrange(100, 10**7),
        }
    ),
    "capitalised": lambda r: (
        f"{r.choice(COMPANIES)} opened an office in "
        f"{r.choice(['São Paulo', 'New York', 'Mumbai', 'Lagos', 'Kraków', 'Rotterdam'])} with "
        f"{r.randrange(20, 900)} staff in {r.randrange(2015, 2025)}."
    ),
    "phone_like": lambda r: (
        f"Call volume was {r.randrange(1000, 99999)} on day "
        f"{r.randrange(1, 365)}, case {r.randrange(10**7, 10**9)} closed."
    ),
}


def generate_distractors(n: int = 300, seed: int = 11) -> list[tuple[str, str]]:
    """``n`` (kind, sentence) pairs, none holding personal data."""
    r = random.Random(seed)
    kinds = list(DISTRACTOR_KINDS)
    return [(kind, DISTRACTOR_KINDS[kind](r)) for kind in (kinds[i % len(kinds)] for i in range(n))]


# Held out: names and phrasings written after the recognizer was tuned on the lists above,
# and never tuned on. Other people, other sentence shapes.
HELD_FIRST = _split(
    "Aditi Tariq Bongani Thandiwe Kofi Efua Nnamdi Chiamaka Rashid Yasmin Reza Shirin Kenji "
    "Aiko Ryo Hana Seo-yeon Ji-ho Quang Huong Arjun Deepika Ravi Lakshmi Gabriel Mariana "
    "Rodrigo Fernanda Erik Sigrid Oskar Maja Wojciech Małgorzata Jiří Tereza Antoine Camille "
    "Luca Francesca Álvaro Carmen Pieter Sanne Klaus Ursula Liam Aoife Connor Maeve Harper "
    "Logan Avery Riley Noah Mia Oliver Ava Leo Isla Arthur Ivy"
)
HELD_LAST = [
    *_split(
        "Chatterjee Banerjee Venkataraman Pillai Mahlangu Dlamini Asante Owusu Nwosu Obi Farouk "
        "Karimi Tehrani Yamamoto Nakamura Kobayashi Choi Jung Pham Le Vu Kapoor Malhotra Souza "
        "Pereira Ribeiro Eriksson Nilsson Berg Lewandowski Zieliński Dvořák Svoboda Girard "
        "Fontaine Bruno Greco Colombo Ramírez Vargas Mendoza Smit Meijer Krüger "
        "Zimmermann Richter Byrne Kelly Fitzgerald Hughes Bennett Foster Sullivan Hayes Reyes"
    ),
    "de Vries",
    "van der Merwe",
    "Al-Amin",
]
HELD_TITLES = ("Dr.", "Prof.", "Ms.", "Mr.", "Mrs.", "Dr", "Frau", "Herr", "Madame")


def _held(r: random.Random) -> str:
    return f"{r.choice(HELD_FIRST)} {r.choice(HELD_LAST)}"


HELD_TEMPLATES: list[Template] = [
    lambda b, r: (
        b.text("Draft a reply to ").value(_held(r), "PERSON").text(" explaining the refund policy.")
    ),
    lambda b, r: (
        b.text("According to ")
        .value(_held(r), "PERSON")
        .text(", the outage began after the 02:00 deploy.")
    ),
    lambda b, r: (
        b.text("Assign ticket 8812 to ").value(_held(r), "PERSON").text(" and notify the on-call.")
    ),
    lambda b, r: (
        b.text("The patient, ")
        .value(_held(r), "PERSON")
        .text(", reported dizziness after the second dose.")
    ),
    lambda b, r: (
        b.text("I spoke with ")
        .value(f"{r.choice(HELD_TITLES)} {r.choice(HELD_LAST)}", "PERSON")
        .text(" yesterday; she agrees with the plan.")
    ),
    lambda b, r: (
        b.text('{"author": "')
        .value(_held(r), "PERSON")
        .text('", "title": "Quarterly Review", "pages": 14}')
    ),
    lambda b, r: (
        b.text("Meeting attendees:\n- ")
        .value(_held(r), "PERSON")
        .text("\n- ")
        .value(_held(r), "PERSON")
        .text("\n- Finance team")
    ),
    lambda b, r: (
        b.text("Rewrite this more politely: ")
        .value(_held(r), "PERSON")
        .text(" keeps missing the standup and nobody knows why.")
    ),
]


def generate_held_out(n: int = 400, seed: int = 23) -> list[Sample]:
    """``n`` samples of names in running text, held out from any tuning."""
    r = random.Random(seed)
    return [r.choice(HELD_TEMPLATES)(_Builder(), r).build() for _ in range(n)]


def generate(n: int = 1200, seed: int = 11) -> list[Sample]:
    """``n`` labelled samples (no distractors: see :func:`generate_distractors`)."""
    r = random.Random(seed)
    return [r.choice(TEMPLATES)(_Builder(), r).build() for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    dump(generate(args.n, args.seed))
    for kind, text in generate_distractors(args.n, args.seed):
        print(json.dumps({"distractor": kind, "text": text}, ensure_ascii=False))


if __name__ == "__main__":
    main()
