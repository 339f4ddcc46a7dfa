"""A labelled corpus for the PII redactor, generated with Faker: sentences that hold personal
data and secrets at known places, and sentences that hold none but look like they might
(dates, versions, prices, order numbers, hashes), to keep precision honest.

    python -m bench.pii_corpus --n 5 --seed 1     # print a few

The values are Faker's, in several locales, and the sentence templates are written to read
like what people put in prompts; nothing here looks at what the redactor does.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field

from faker import Faker

__all__ = ["Sample", "dump", "generate"]

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "nl_NL", "it_IT", "es_ES", "en_AU")


@dataclass
class Sample:
    text: str
    spans: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, entity)


class _Builder:
    """Builds one sentence from literal pieces and labelled values."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.spans: list[tuple[int, int, str]] = []
        self.length = 0

    def text(self, piece: str) -> _Builder:
        self.parts.append(piece)
        self.length += len(piece)
        return self

    def value(self, piece: str, entity: str) -> _Builder:
        self.spans.append((self.length, self.length + len(piece), entity))
        return self.text(piece)

    def build(self) -> Sample:
        return Sample("".join(self.parts), self.spans)


def _token(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _secret(fake: Faker, rng: random.Random) -> str:
    upper = string.ascii_uppercase + string.digits
    kind = rng.randrange(10)
    if kind == 0:
        return "sk-proj-" + _token(rng, 48, string.ascii_letters + string.digits + "_-")
    if kind == 1:
        return "sk-ant-api03-" + _token(rng, 40, string.ascii_letters + string.digits + "_-")
    if kind == 2:
        return "AKIA" + _token(rng, 16, upper)
    if kind == 3:
        return "ghp_" + _token(rng, 36)
    if kind == 4:
        return (
            "xoxb-"
            + "-".join(_token(rng, n, string.digits) for n in (11, 12))
            + "-"
            + _token(rng, 24)
        )
    if kind == 5:
        return "AIza" + _token(rng, 35, string.ascii_letters + string.digits + "_-")
    if kind == 6:
        return "sk_live_" + _token(rng, 24)
    if kind == 7:
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        claims = {"sub": fake.uuid4(), "name": fake.name(), "iat": rng.randrange(10**9, 2 * 10**9)}
        payload = _b64url(json.dumps(claims).encode())
        return f"{header}.{payload}.{_b64url(rng.randbytes(32))}"
    if kind == 8:
        body = base64.b64encode(rng.randbytes(rng.randrange(90, 300))).decode()
        lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
        label = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY"])
        return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----"
    return "hf_" + _token(rng, 34)


def _name(fake: Faker, rng: random.Random) -> str:
    return fake.first_name() if rng.random() < 0.5 else f"{fake.first_name()} {fake.last_name()}"


# A US SSN is a US thing: other locales' ssn() gives their own national ids.
_US = Faker("en_US")

# Each template makes one sentence: (builder, fake, rng) -> builder.
Template = Callable[[_Builder, Faker, random.Random], _Builder]

TEMPLATES: list[Template] = [
    lambda b, f, r: (
        b.text("Please reply to ")
        .value(f.email(), "EMAIL_ADDRESS")
        .text(" with the updated invoice.")
    ),
    lambda b, f, r: b.text("My email is ").value(f.free_email(), "EMAIL_ADDRESS").text(", thanks"),
    lambda b, f, r: (
        b.text("Forward this to ")
        .value(f.company_email(), "EMAIL_ADDRESS")
        .text(" and cc ")
        .value(f.email(), "EMAIL_ADDRESS")
        .text(".")
    ),
    lambda b, f, r: (
        b.text("You can reach me on ").value(f.phone_number(), "PHONE_NUMBER").text(" after 5pm.")
    ),
    lambda b, f, r: (
        b.text("Customer phone: ")
        .value(f.phone_number(), "PHONE_NUMBER")
        .text("; preferred contact: phone.")
    ),
    lambda b, f, r: (
        b.text("Call ")
        .value(f.phone_number(), "PHONE_NUMBER")
        .text(" or write to ")
        .value(f.email(), "EMAIL_ADDRESS")
    ),
    lambda b, f, r: (
        b.text("The card on file is ")
        .value(f.credit_card_number(), "CREDIT_CARD")
        .text(f", expiring {f.credit_card_expire()}.")
    ),
    lambda b, f, r: (
        b.text("Charge ").value(_grouped_card(f), "CREDIT_CARD").text(f" for {f.pricetag()} please")
    ),
    lambda b, f, r: b.text("SSN: ").value(_US.ssn(), "US_SSN"),
    lambda b, f, r: (
        b.text("Applicant social security number is ")
        .value(_US.ssn(), "US_SSN")
        .text(" and DOB ")
        .text(f.date_of_birth().isoformat())
        .text(".")
    ),
    lambda b, f, r: b.text("Wire the refund to IBAN ").value(f.iban(), "IBAN_CODE").text("."),
    lambda b, f, r: (
        b.text("Bank details: ").value(_spaced_iban(f), "IBAN_CODE").text(f" ({f.company()})")
    ),
    lambda b, f, r: (
        b.text("Login from ")
        .value(f.ipv4_public(), "IP_ADDRESS")
        .text(f" at {f.time()} was blocked.")
    ),
    lambda b, f, r: (
        b.text("The server at ")
        .value(f.ipv4_private(), "IP_ADDRESS")
        .text(" and ")
        .value(f.ipv6(), "IP_ADDRESS")
        .text(" are down.")
    ),
    lambda b, f, r: (
        b.text("Ship it to ")
        .value(f.street_address(), "STREET_ADDRESS")
        .text(f", {f.postcode()} {f.city()}.")
    ),
    lambda b, f, r: (
        b.text("I moved, my new address is ").value(f.street_address(), "STREET_ADDRESS").text(".")
    ),
    lambda b, f, r: b.text("Hi ").value(f.first_name(), "PERSON").text(", can you summarise this?"),
    lambda b, f, r: (
        b.text("Dear ")
        .value(f.name(), "PERSON")
        .text(",\nThank you for your order. It ships tomorrow.")
    ),
    lambda b, f, r: b.text("The report is attached.\n\nBest regards,\n").value(
        _name(f, r), "PERSON"
    ),
    lambda b, f, r: (
        b.text("Hello ")
        .value(f.first_name(), "PERSON")
        .text("! Your ticket was updated.\nThanks,\n")
        .value(f.first_name(), "PERSON")
    ),
    lambda b, f, r: b.text("Use this key: ").value(_secret(f, r), "SECRET"),
    lambda b, f, r: (
        b.text("curl -H 'Authorization: Bearer ")
        .value(
            _token(r, r.randrange(24, 64), string.ascii_letters + string.digits + "-._"), "SECRET"
        )
        .text("' https://api.example.com/v1/items")
    ),
    lambda b, f, r: (
        b.text("Why does my request fail with the token ")
        .value(_secret(f, r), "SECRET")
        .text(" set?")
    ),
    lambda b, f, r: b.text("export OPENAI_API_KEY=").value(_secret(f, r), "SECRET"),
]


def _grouped_card(fake: Faker) -> str:
    digits = fake.credit_card_number(card_type=fake.random_element(["visa16", "mastercard"]))
    return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))


def _spaced_iban(fake: Faker) -> str:
    iban = fake.iban()
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


# Sentences with no personal data that share its shapes: digits, dots, dashes, at signs.
DISTRACTORS: list[Callable[[Faker, random.Random], str]] = [
    lambda f, r: (
        f"The release {r.randrange(1, 20)}.{r.randrange(0, 30)}.{r.randrange(0, 9)} "
        f"ships on {f.date()}."
    ),
    lambda f, r: f"Order #{r.randrange(10**5, 10**8)} totals {f.pricetag()}.",
    lambda f, r: f"Meeting moved to {f.date(pattern='%d/%m/%Y')} at {f.time(pattern='%H:%M')}.",
    lambda f, r: f"Commit {f.sha1()[:12]} fixed issue {r.randrange(100, 9999)}.",
    lambda f, r: f"Request id {f.uuid4()} took {r.randrange(20, 900)} ms.",
    lambda f, r: (
        f"Use model gpt-4o-mini with temperature 0.{r.randrange(0, 9)} "
        f"and max_tokens {r.randrange(16, 4096)}."
    ),
    lambda f, r: f"Summarise: {f.paragraph(nb_sentences=3)}",
    lambda f, r: f"The invoice for {f.company()} is due on {f.date()} ({f.pricetag()}).",
    lambda f, r: (
        f"Population grew from {r.randrange(10**6, 10**8):,} to "
        f"{r.randrange(10**6, 10**8):,} in {r.randrange(1950, 2024)}."
    ),
    lambda f, r: (
        f"Set the timeout to {r.randrange(1, 600)} seconds and retry "
        f"{r.randrange(1, 9)} times; see RFC {r.randrange(1000, 9999)}."
    ),
    lambda f, r: f"Hi there, can you explain {f.bs()}?",
    lambda f, r: f"Thanks for the help with {f.catch_phrase().lower()}!",
]


def generate(n: int = 2400, seed: int = 7, distractor_share: float = 0.25) -> list[Sample]:
    """``n`` labelled sentences, the same for the same ``seed``."""
    rng = random.Random(seed)
    _US.seed_instance(seed)
    fakes = {locale: Faker(locale) for locale in LOCALES}
    for offset, fake in enumerate(fakes.values()):
        fake.seed_instance(seed + offset)
    samples = []
    for _ in range(n):
        fake = fakes[rng.choice(LOCALES)]
        if rng.random() < distractor_share:
            samples.append(Sample(rng.choice(DISTRACTORS)(fake, rng)))
        else:
            samples.append(rng.choice(TEMPLATES)(_Builder(), fake, rng).build())
    return samples


def dump(samples: list[Sample]) -> None:
    """Print ``samples`` as JSON lines, each with its labelled values."""
    for sample in samples:
        labels = [(sample.text[s:e], kind) for s, e, kind in sample.spans]
        print(json.dumps({"text": sample.text, "labels": labels}, ensure_ascii=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    dump(generate(args.n, args.seed))


if __name__ == "__main__":
    main()
