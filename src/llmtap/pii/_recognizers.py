"""The recognizers: one per kind of personal data, each a pattern that finds candidates and,
where the kind has one, a validator that keeps only the real ones.

Validators come from well-kept libraries: ``phonenumbers`` (Google's libphonenumber) for phone
numbers, ``python-stdnum`` for card checksums (Luhn), IBANs and US social security numbers,
and the standard library's ``ipaddress`` for IP addresses. The patterns are ours; they are
the part a library would not make faster or more exact here (Presidio's analyzer has similar
ones, but brings spaCy and fetches the public suffix list over the network on first use,
which a redactor whose job is that nothing leaves the process must not do).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from stdnum import iban as stdnum_iban
from stdnum import luhn
from stdnum.us import ssn as stdnum_ssn

from ._names import find_names
from ._phone import OTHER, context_of, find_phones, words

__all__ = ["RECOGNIZERS", "Recognizer"]

Span = tuple[int, int]


@dataclass(frozen=True)
class Recognizer:
    entity: str
    find: Callable[[str], Iterator[Span]]
    # Cheap test on the whole text: when False the recognizer is skipped (most text has no
    # "@", few digits, and so on).
    hint: Callable[[str], bool]


def _by_pattern(pattern: re.Pattern[str], group: int = 0) -> Callable[[str], Iterator[Span]]:
    def find(text: str) -> Iterator[Span]:
        for match in pattern.finditer(text):
            yield match.span(group)

    return find


def _always(text: str) -> bool:
    return True


_DIGIT = re.compile(r"\d")


def _has_digits(text: str) -> bool:
    return _DIGIT.search(text) is not None


# -- secrets ------------------------------------------------------------------------------

_SECRET = re.compile(
    # PEM's and PGP's ("-----BEGIN PGP PRIVATE KEY BLOCK-----")
    r"-----BEGIN[A-Z ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
    r"-----END[A-Z ]*PRIVATE KEY(?: BLOCK)?-----"
    r"|-----BEGIN[A-Z ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*"  # a key cut off midway is still a key
    # JWT: from the start of a run of its characters only, else each "eyJ" after a "-" in
    # a long run would scan the run to its end again (quadratic).
    r"|(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}+\.eyJ[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]{8,}"
    r"|\bsk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"  # OpenAI, Anthropic
    r"|\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b"  # AWS access key ids
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}\b|\bgithub_pat_[A-Za-z0-9_]{40,}"  # GitHub
    r"|\bglpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|\bAIza[0-9A-Za-z_-]{35}"  # Google
    r"|\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
    r"|\bhf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|\bgsk_[A-Za-z0-9]{40,}"  # Groq
    r"|\blt_[A-Za-z0-9_-]{30,}"  # llmtap's own keys
)
# A bearer token, and the value of an obvious credential assignment: the value only.
_SECRET_VALUE = re.compile(
    r"(?i)\bbearer\s+([A-Za-z0-9\-._~+/]{16,}=*)"
    r"|(?i:\b(?:api[_-]?key|secret(?:[_-]?key)?|access[_-]?token|auth[_-]?token|password|passwd)"
    r"\b[\"']?\s*[:=]\s*[\"']?)([^\s\"',;]{8,})"
)


def _secret_values(text: str) -> Iterator[Span]:
    for match in _SECRET_VALUE.finditer(text):
        group = 1 if match.group(1) else 2
        yield match.span(group)


# Every secret pattern holds one of these (in lower case): a substring test on them is far
# cheaper than running the patterns over text that has none.
_SECRET_HINTS = (
    "private key", "eyj", "sk-", "akia", "asia", "agpa", "aida", "aroa", "gh", "glpat-",
    "xox", "aiza", "_live_", "_test_", "hf_", "gsk_", "lt_", "bearer", "key", "secret",
    "token", "passw",
)  # fmt: skip


def _may_hold_secret(text: str) -> bool:
    lower = text.lower()
    return any(hint in lower for hint in _SECRET_HINTS)


def _find_secrets(text: str) -> Iterator[Span]:
    yield from _by_pattern(_SECRET)(text)
    yield from _secret_values(text)


# -- e-mail ---------------------------------------------------------------------------------

_EMAIL = re.compile(
    # \w, not [A-Za-z0-9]: internationalised addresses (RFC 6531) have letters of any script.
    # The local part starts where a run of its characters does, and is taken whole
    # (possessive): started inside a run, each start would scan the run to its end again,
    # quadratic in a long one (a base64 attachment beside an address).
    r"(?<![\w.%+!#$&'*/=?^`{|}~-])[\w!#$%&'*+/=?^`{|}~-]++(?:\.[\w!#$%&'*+/=?^`{|}~-]++)*+"
    r"@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}\b"
)

# -- cards, IBAN, SSN: checksums ------------------------------------------------------------

# 12 to 19 digits, bare or in groups of 4 (Amex: 4-6-5) with one kind of separator.
_CARD = re.compile(
    r"(?<![\w.,-])(?:\d{4}([ -])\d{4}\1\d{4}\1\d{1,7}|\d{4}([ -])\d{6}\2\d{4,5}|\d{12,19})(?!\w)"
)


def _card_ok(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    # Card numbers start with 2 to 6 (0 for some Maestro, 1800 for old JCB); a Luhn-valid id,
    # timestamp or tracking number that starts otherwise is not one.
    brand = digits[0] in "234560" or digits.startswith("1800")
    return 12 <= len(digits) <= 19 and brand and luhn.is_valid(digits)


# Words that say a number is a card's: nearer than an "other" word ("the customer's card
# 4111 ..."), they win.
_CARD_WORDS = words(
    "card cards visa mastercard amex maestro jcb discover credit debit cc kreditkarte karte "
    "carte tarjeta carta cartão"
)


def _find_cards(text: str) -> Iterator[Span]:
    for match in _CARD.finditer(text):
        if _card_ok(match.group(0)) and context_of(text, match.start(), _CARD_WORDS) != OTHER:
            yield match.span()


_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){10,30}\b")


def _find_ibans(text: str) -> Iterator[Span]:
    for match in _IBAN.finditer(text):
        candidate = match.group(0)
        # The pattern may run on into the next word ("... 3000 BANK"): drop trailing groups
        # until what is left validates.
        while len(candidate) >= 14:
            if stdnum_iban.is_valid(candidate):
                yield match.start(), match.start() + len(candidate)
                break
            cut = candidate.rfind(" ")
            if cut < 0:
                break
            candidate = candidate[:cut]


_SSN = re.compile(
    r"(?<![\d-])\d{3}([- ])\d{2}\1\d{4}(?![\d-])"
    r"|(?i:\b(?:ssn|social security(?: number| no\.?)?)\b\W{0,3})(\d{9})\b"
)


def _find_ssns(text: str) -> Iterator[Span]:
    for match in _SSN.finditer(text):
        group = 2 if match.group(2) else 0
        if stdnum_ssn.is_valid(match.group(group).replace(" ", "-")):
            yield match.span(group)


# -- IP addresses ---------------------------------------------------------------------------

_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d]|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])"
)


def _ip_ok(candidate: str) -> bool:
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return False
    # 0.0.0.0, ::, 127.0.0.1 and ::1 are nobody's address: a bind or a loopback in a config.
    return not (address.is_unspecified or address.is_loopback)


# Words before a dotted quad that make it a version, a section or an OID, not an address; and
# a 2 or 3 part version just before it ("from 3.19.0 to 3.20.1.4").
_VERSION_WORDS = words(
    "version versions ver v release build upgrade upgraded downgrade update updated firmware "
    "kernel sdk package section chapter clause oid rule step"
)
_VERSION = re.compile(r"\bv?\d+\.\d+(?:\.\d+)?\b(?!\.\d)")
_WORD = re.compile(r"[^\W\d_]+")


def _version_context(text: str, start: int) -> bool:
    before = text[max(0, start - 32) : start]
    words = _WORD.findall(before.lower())[-3:]
    return any(word in _VERSION_WORDS for word in words) or bool(_VERSION.search(before))


def _find_ips(text: str) -> Iterator[Span]:
    if "." in text:
        for match in _IPV4.finditer(text):
            if _ip_ok(match.group(0)) and not _version_context(text, match.start()):
                yield match.span()
    if "::" in text or text.count(":") >= 3:
        for match in _IPV6.finditer(text):
            candidate = match.group(0)
            if candidate.count(":") >= 2 and len(candidate) >= 3 and _ip_ok(candidate):
                yield match.span()


# -- street addresses -----------------------------------------------------------------------

_STREET_TYPES = (
    "Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|"
    "Terrace|Ter|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq|Trail|Trl|Crescent|Cres|"
    "Close|Grove|Gardens|Row|Mews|Hill|Park|Walk|Loop|Alley|Plaza|Point|Pike|Run|Path|"
    "Crossing|Ridge|Heights|Valley|View|Vista|Green|Estates|Meadows|Commons|Causeway|"
    "Expressway|Freeway|Turnpike|Route|Rte|Fort|Port|Harbor|Island|Lake|Landing|Junction|"
    "Mill|Mills|Motorway|Pass|Bypass|Spur|Station|Stravenue|Summit|Union|Villages?|Well|Wells|"
    # the rest of the USPS standard suffixes (Publication 28, appendix C1) people write out
    "Alley|Annex|Arcade|Bayou|Beach|Bend|Bluffs?|Bottom|Branch|Bridge|Brook|Burg|Camp|"
    "Canyon|Cape|Center|Cliffs?|Club|Common|Corners?|Course|Courts|Cove|Creek|Crest|Curve|"
    "Dale|Dam|Divide|Drives|Extension|Falls|Ferry|Field|Fields|Flats?|Ford|Forest|Forge|"
    "Fork|Freeway|Gateway|Glen|Greens|Groves|Harbors|Haven|Hollow|Inlet|Isle|Keys?|Knolls?|"
    "Lakes|Light|Lights|Locks?|Lodge|Manor|Meadow|Mission|Mount|Mountain|Neck|Orchard|Oval|"
    "Overpass|Parks|Pine|Pines|Plains?|Points|Ports|Prairie|Radial|Ranch|Rapids?|Rest|"
    "Ridges|River|Roads|Shoals?|Shores?|Skyway|Springs?|Squares|Stream|Streets|Tunnel|"
    "Trace|Track|Trafficway|Underpass|Unions|Ville|Viaduct|Views|Outlook|Ways"
)
_ADDRESS = re.compile(
    # English-speaking: "1234 Elm Street", "77 North Maple Ave., Apt. 5"
    r"\b\d{1,6}[A-Za-z]?\s+(?:[A-Z][A-Za-z'\u2019.-]*\s+){1,4}(?:" + _STREET_TYPES + r")\b"
    r"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|Flat|#)\.?\s*[\w-]+)?"
    # British flats: "Flat 3\nLeigh Fort", "Studio 97s\nDavis Meadow"
    r"|\b(?:Flat|Studio|Apartment)\s+\d+[a-z]?\s*\n?\s*(?:[A-Z][A-Za-z'\u2019.-]*\s+){1,3}(?:"
    + _STREET_TYPES
    + r")\b"
    # German and Dutch: "Hauptstraße 12a", "Hans-Böckler-Allee 3/9", "Matthijsstraat 8"
    # (from the start of a hyphenated word only: quadratic from each part of a long one)
    r"|(?<![\w'\u2019-])[A-ZÄÖÜ][\w'\u2019-]*(?:straße|strasse|str\.|weg|allee|platz|gasse|ring|damm|ufer|"
    r"straat|laan|gracht|plein|singel|steeg|kade|dreef|hof|pad|dijk|markt)(?:\s+[A-Za-zäöü]+)?\s+\d{1,5}\s?[a-z]?"
    r"(?:\s?[-/]\s?\d{1,5})?\b"
    # French, Spanish, Italian: "78, rue de Voisin", "Calle Mayor 5", "Via Roma 12"
    r"|\b\d{1,5},?\s+(?:rue|avenue|av\.|boulevard|bd|chemin|place|impasse|allée|quai|route|"
    r"cours)\s+(?:(?:d[eu]s?|la|le|l'|d')\s*)*[A-ZÀ-Ý][\w'\u2019-]*(?:\s+[A-ZÀ-Ý][\w'\u2019-]*)*"
    r"|\b(?:Calle|Avenida|Plaza|Paseo|Via|Viale|Piazza|Corso|Rua|Canale|Borgo|Contrada|"
    r"Strada|Vicolo|Largo|Rotonda|Ronda|Camino|Carrer|Pasaje|Callej[oó]n|Traves[ií]a)\s+(?:(?:de|del|la|di|da)\s+)*"
    # A name of six words at most: unbounded, each "Via" of a long run of capitalised words
    # would read the run to its end before failing (quadratic).
    r"[A-ZÀ-Ý][\w'\u2019-]*(?:\s+[A-ZÀ-Ý][\w'\u2019-]*){0,5},?\s+\d{1,5}\b"
)

RECOGNIZERS: tuple[Recognizer, ...] = (
    # Order is precedence: where two kinds claim the same characters, the earlier one wins.
    Recognizer("SECRET", _find_secrets, _may_hold_secret),
    Recognizer("EMAIL_ADDRESS", _by_pattern(_EMAIL), lambda t: "@" in t),
    Recognizer("IBAN_CODE", _find_ibans, _has_digits),
    Recognizer("CREDIT_CARD", _find_cards, _has_digits),
    Recognizer("US_SSN", _find_ssns, _has_digits),
    Recognizer("IP_ADDRESS", _find_ips, lambda t: "." in t or ":" in t),
    Recognizer("PHONE_NUMBER", find_phones, _has_digits),
    Recognizer("STREET_ADDRESS", _by_pattern(_ADDRESS), _has_digits),
    Recognizer("PERSON", find_names, _always),
)
