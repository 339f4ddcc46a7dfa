"""Phone numbers, and the context words that tell a number's kind.

A digit run is a phone number when it is written as one, not merely when libphonenumber can
read it as one (almost any 7 to 15 digits can be, in some country): an international number
(``+44 ...``, ``0044 ...``) that is valid; a national number whose digit groups are the ones
that country writes (libphonenumber's own check, ``Leniency.STRICT_GROUPING``: ``(415)
555-0132`` is, the ISBN ``978-3-16-148410-0`` is not); or any possible number right after a
word that says it is one (``call``, ``mobile:``, ``"phone": ``). A word that says it is
something else (``order``, ``invoice``, ``ts``, ``"user_id": ``) wins over the digits.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import phonenumbers
from phonenumbers import Leniency, PhoneNumberMatcher

__all__ = ["OTHER", "PHONE", "context_of", "find_phones", "words"]

PHONE, OTHER = "phone", "other"


def words(text: str) -> frozenset[str]:
    """The words of ``text``, split at spaces (long word lists read better as text)."""
    return frozenset(text.split())


# Words (lower case; JSON keys split at "_") that say what the number after them is.
_PHONE_WORDS = words(
    "phone phones telephone tel tlf mobile mob cell cellphone fax call calls calling ring dial "
    "reach text sms whatsapp signal hotline landline telefon telefonnummer handy téléphone "
    "tél portable móvil movil teléfono telefono cellulare celular mobiel telefoonnummer "
    "contact"
)
_OTHER_WORDS = words(
    "order orders invoice inv tracking track parcel shipment waybill awb ticket case account "
    "acct iban id ids uid pid uuid guid isbn issn ean upc sku ref reference serial part "
    "timestamp epoch ts time created updated modified expires date dob born year port ports "
    "build version v release commit hash sha seed session batch lot item product model "
    "transaction txn receipt confirmation booking po amount price total cost cents qty "
    "quantity size bytes kb mb gb count rows tokens lat lon lng latitude longitude duration "
    "ms sec seconds timeout range max min limit offset page line step ssn social security "
    "zip postcode postal plz code pin otp customer user employee student patient member "
    "policy claim loan"
)
# Whole words only: the "v" of "v1.2.3.4" or the "x" of "4x" says nothing about what follows.
_WORD = re.compile(r"(?<!\d)[^\W\d_]+(?!\d)")
# How far back the context words are looked for: the last few words before the number.
_CONTEXT_CHARS, _CONTEXT_WORDS = 40, 4


def context_of(text: str, start: int, own: frozenset[str] = _PHONE_WORDS) -> str | None:
    """``PHONE`` (or the kind ``own`` names) or ``OTHER`` when one of the last few words
    before ``start`` says what a number there is (the nearest such word decides), else
    None."""
    words = _WORD.findall(text[max(0, start - _CONTEXT_CHARS) : start].lower())
    for word in reversed(words[-_CONTEXT_WORDS:]):
        if word in own:
            return PHONE
        if word in _OTHER_WORDS:
            return OTHER
    return None


# Candidates: an optional international prefix, an optional area code in parentheses (with an
# optional "(0)"), then digit groups with single separators, and an optional extension.
_CANDIDATE = re.compile(
    # Not inside a word or a number; but an area code in parentheses may follow a letter.
    r"(?:(?<![\w+/.#-])|(?<=[^\W\d_])(?=\())"
    r"(?:(?:\+|00)\d{1,3}[ .-]?)?(?:\(0\)[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?"
    r"\d{1,5}(?:[ .-]?\d{1,5}){1,5}(?:\s?(?:x|ext\.?)\s?\d{1,6})?(?![\w/]|[.:]\d)"
)
REGIONS = ("US", "GB", "DE", "FR", "IT", "ES", "NL", "IN", "AU", "CA", "BR", "CH")
_EXTENSION = re.compile(r"\s?(?:x|ext\.?)\s?\d{1,6}$")
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")
_SEPARATORS = frozenset(" .-()")


_GROUP_SEPARATOR = re.compile(r"[ .-]")


# A number beside another, a space or a comma between: a run of numbers (a table, a list of
# counts), unless it is written as a phone number only is (international, or "(area)").
_NEXT_NUMBER = re.compile(r"[ \t]?[,;]?[ \t]?\d")
_PREVIOUS_NUMBER = re.compile(r"\d[ \t]?[,;]?[ \t]?$")


def _in_a_run_of_numbers(text: str, start: int, end: int) -> bool:
    if end < len(text) and text[end] in " \t,;" and _NEXT_NUMBER.match(text, end):
        return True
    return (
        start > 0
        and text[start - 1] in " \t,;"
        and bool(_PREVIOUS_NUMBER.search(text, max(0, start - 4), start))
    )


def find_phones(text: str) -> Iterator[tuple[int, int]]:
    for match in _CANDIDATE.finditer(text):
        start, candidate = match.start(), match.group(0)
        context = context_of(text, start)
        if (
            context != PHONE
            and not candidate.startswith(("+", "00", "("))
            and _in_a_run_of_numbers(text, start, match.end())
        ):
            # Most of a table's numbers, each a candidate: the library's dozens of parses
            # each would cost a table of numbers seconds, and find "phones" in it.
            continue
        if _is_phone(candidate, context):
            yield match.span()
            continue
        # The pattern may have joined a number to its neighbours ("+44 20 7946 0958
        # 1700000000", "id 1234 (415) 555-0132"): try it without its last groups, then
        # from a "+" or "(" inside it, which only a phone number starts with.
        cuts = [m.start() for m in _GROUP_SEPARATOR.finditer(candidate)]
        for cut in reversed(cuts[-3:]):
            if _is_phone(candidate[:cut], context_of(text, start)):
                yield start, start + cut
                break
        else:
            for cut in cuts[:2]:
                rest = candidate[cut + 1 :]
                if rest[:1] in ("+", "(") and _is_phone(rest, context_of(text, start + cut + 1)):
                    yield start + cut + 1, match.end()
                    break


def _is_phone(candidate: str, context: str | None) -> bool:
    if _DATE.fullmatch(candidate):
        return False
    number = _EXTENSION.sub("", candidate)
    if not 7 <= sum(c.isdigit() for c in number) <= 15:
        return False
    if number.startswith(("+", "00")):
        return _international(number, context)
    if context == OTHER and "(" not in number:  # "(415) 555-0132" is no order number
        return False
    bare = _SEPARATORS.isdisjoint(number)
    if bare and context != PHONE:  # a bare digit run is an id, a count or a time
        return False
    for region in REGIONS:
        try:
            parsed = phonenumbers.parse(number, region)
        except phonenumbers.NumberParseException:
            continue
        if context == PHONE:
            if phonenumbers.is_possible_number(parsed):
                return True
        elif phonenumbers.is_valid_number(parsed) and _grouped_as_in(number, region):
            return True
    return False


def _international(number: str, context: str | None) -> bool:
    if number.startswith("00"):
        number = "+" + number[2:]
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return False
    if phonenumbers.is_valid_number(parsed):
        return True
    return context == PHONE and phonenumbers.is_possible_number(parsed)


def _grouped_as_in(number: str, region: str) -> bool:
    """Whether ``number``'s digit groups are the ones ``region`` writes its numbers in."""
    matcher = PhoneNumberMatcher(number, region, leniency=Leniency.STRICT_GROUPING)
    return any(match.raw_string == number for match in matcher)
