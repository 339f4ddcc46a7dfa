"""Personal names: after greetings and in sign-offs, after a title ("Dr. Okafor"), as the value
of a field that says it holds one (``"name": ...``, ``Customer name: ...``), and anywhere in
running text when a run of capitalised words starts with a known first name ("forward this to
Priya Raman").

Known names come from Faker's person data (first and last names of 30-odd locales, shipped in
the package, nothing fetched): a name data set made for writing realistic names, which is
what recognising them needs. It is loaded once, on first use (~0.5 s, ~3 MB), on the thread
that redacts: the exporter's, never the caller's.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Iterator

from ._phone import words

__all__ = ["find_names", "is_name_key", "looks_like_name", "strip_title"]

Span = tuple[int, int]

# The locales the other recognizers cover (their phone regions), and their neighbours, in
# Latin script: names in other scripts have no capital letters to find them by.
_LOCALES = words(
    "en_US en_GB en_IE en_NZ en_IN de_DE de_AT de_CH fr_FR fr_CH fr_CA nl_NL nl_BE it_IT es_ES "
    "es_MX pt_BR pt_PT pl_PL sv_SE da_DK fi_FI no_NO cs_CZ ro_RO hu_HU tr_TR id_ID vi_VN yo_NG "
    "zu_ZA tw_GH ga_IE ja_JP zh_CN zh_TW"  # the last three for their romanized names
)
_LATIN_NAME = re.compile(r"[^\W\d_][^\W\d_'\u2019-]*(?:['\u2019-][^\W\d_]+)*")


@functools.cache
def _known() -> frozenset[str]:
    first, last = _lexicon()
    return first | last


@functools.cache
def _lexicon() -> tuple[frozenset[str], frozenset[str]]:
    """(first names, last names) of every locale, as written (capitalised)."""
    first: set[str] = set()
    last: set[str] = set()
    for locale in sorted(_LOCALES):
        try:
            provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        except ImportError:  # a locale an older or newer Faker does not have
            continue
        for attribute in vars(provider):
            kind = attribute.replace("_romanized", "")
            target = first if kind.startswith("first_names") else None
            target = last if kind.startswith("last_names") else target
            if target is not None:
                target.update(getattr(provider, attribute))
    return _clean(first), _clean(last)


def _clean(names: set[str]) -> frozenset[str]:
    return (
        frozenset(n for n in names if len(n) > 1 and n[0].isupper() and _LATIN_NAME.fullmatch(n))
        - _COMMON
    )


# Capitalised words that are also in the name lists but, in a prompt, are far more often
# something else: months and days, places, virtues, colours, verbs at a sentence's start.
_COMMON = words(
    "January February March April May June July August September October November December "
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday Spring Summer Autumn Winter "
    "Will Can May Mark Bill Grant Page Hope Faith Joy Rose Art Royal Chase Hunter Mason Miles "
    "Major Price Young King Green White Brown Black Gray Grey Long Rich Dean Guy Max Van Sky "
    "Star Sunny Christian Paris Florence Georgia Virginia Chelsea Brooklyn Austin Dallas "
    "Houston Phoenix Sydney Lincoln Washington Jordan Victoria Santiago Lima Regina "
    "Street Hall Field Bank Post Love Ever Said Please Best Dear Hello Thanks Note New Sale "
    "Add Call Ask Check See Let Send Get Set Use Make Help Open Close Start Stop Read Write "
    "Order Date Time Total Price Status Summary Customer Support Team Sales Office Case"
)
# The first word of a place: "San Diego", "Saint Denis", "San Michele Appiano".
_PLACE_FIRST = words(
    "San Santa Santo São Sao St Saint Sainte Sankt Los Las El Port Fort Mount Mont Lake Cape "
    "Bad Isla Ciudad Villa New North South East West Upper Lower Great Little"
)
_COMMON |= _PLACE_FIRST
# The last word of a company, a place or a product: "Aurora Health", "Diego Analytics".
_NOT_SURNAMES = words(
    "Health Analytics Logistics Traders Group Labs Lab Systems Solutions Technologies Tech "
    "Bank Capital Partners Holdings Inc Ltd LLC LLP PLC Pty GmbH GbR OHG KG AG SA SAS SARL SL "
    "SpA Srl BV NV Corp Corporation Company "
    "Co Foundation University College School Hospital Clinic Institute Airlines Airways "
    "Motors Energy Pharma Media Studios Games Software Networks Consulting Services "
    "Insurance Foods Hotel Hotels Street Avenue Road Square Station Airport Bridge River "
    "Lake Mountain Valley City County State Island Beach Center Centre Mall Cloud AI API App "
    "Pro Plus Max Mini Ultra Edition Series Award Prize Day Week Act Law"
)
_PARTICLES = words("van von der den de du da di del della le la ten ter y zu bin al el")
_TITLES = (
    r"Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Professor|Sir|Dame|Lady|Lord|Herr|Frau|Mme|Mlle|M\.|Sr|Sra|"
    r"Srta|Dña|Don|Doña|Sig|Sig\.ra|Dott|Dott\.ssa|Ing|Avv|Mevr|Dhr|Shri|Smt|Judge|Officer"
)
# Words before a lone known first name that make it a person: "forward this to Priya".
_BEFORE_ONE_NAME = words("to cc ask tell ping contact thank thanks dear hi hello hey with by")
# Words after a lone known name that make it a person: "Okafor said", "Priya's".
_AFTER_ONE_NAME = words(
    "said says wrote writes asked asks told replied mentioned explained added noted suggested "
    "confirmed reported called emailed thinks agreed approved"
)
# Words before a run of names that make it a street ("Calle", "rue", "Urbanización de").
_STREET_BEFORE = words(
    "de del della di du des rue chemin avenue allée via viale piazza corso calle vial c "
    "avenida paseo plaza ronda carrer acceso pasadizo urbanización travesía camino rua "
    "straße strasse weg laan straat flat apt unit suite stretto incrocio borgo contrada "
    "vicolo largo rotonda canale piazzale strada quartiere"
)
# What follows a company's name: "Fortunato Pavón Valdés S.L.", "Wulf GbR".
_COMPANY_AFTER = re.compile(
    r"[ \t]*(?:&|\+|S\.?L\.?|S\.?A\.?S?|SARL|S\.?Coop|S\.?p\.?A|S\.?r\.?l|GbR|GmbH|AG\b|KG\b|"
    r"OHG|e\.?V\.|Ltd|LLC|LLP|Inc\b|PLC|B\.?V\.|N\.?V\.|Corp|Co\b|Group|Partners)"
)
_NUMBER_BEFORE = re.compile(r"\d[\w/-]*[ \t]*\n?[ \t]*$")
_NUMBER_AFTER = re.compile(r"[ \t]+\d")

_UPPER = "".join(c for c in map(chr, range(0x41, 0x250)) if c.isupper())
_CAP = rf"[{_UPPER}][^\W\d_]*(?:['\u2019-][^\W\d_]+)*"
_PARTICLE = "|".join(sorted(_PARTICLES, key=len, reverse=True))
# A run of capitalised words, with lower-case particles between them ("Anna van der Berg").
_RUN = re.compile(
    # The lookahead first: most positions fail it at once, before the titles are tried.
    rf"(?=[{_UPPER}])(?<![\w@./#-])(?:(?:{_TITLES})\.?[ \t]+)?"
    rf"{_CAP}(?:[ \t]+(?:(?:{_PARTICLE})[ \t]+)*{_CAP})*"
    r"(?!\w|@)"
)
_TITLE_AT_START = re.compile(rf"(?:{_TITLES})\.?[ \t]+")
_WORD_BEFORE = re.compile(r"([^\W\d_]+)[\s,:]*$")
_WORD_AFTER = re.compile(r"^(?:'s\b|\u2019s\b|[ \t]+([^\W\d_]+))")

# -- greetings and sign-offs ----------------------------------------------------------------

_NAME = r"[^\W\d_][\w'\u2019-]*"
_GREETING = re.compile(
    r"(?=[BCDGHKLMRSTWYm])\b(?:Hi|Hello|Hey|Dear|Hiya|Greetings|Good (?:morning|afternoon|evening)"
    r"|Thanks|Thank you|Many thanks|Cheers|Regards|Best regards|Kind regards|Warm regards|"
    r"Best wishes|Best|Sincerely|Yours(?: truly| sincerely| faithfully)?|Respectfully|Love|"
    r"Warmly|Cordially|Talk soon|Take care|[Mm]y name is)"
    rf"[,!:]?[ \t]*(?:\r?\n[ \t]*)?((?:{_TITLES})\.?\s+)?({_NAME}(?:[ \t]+{_NAME}){{0,3}})"
)
# Words that follow a greeting but are not names.
_NOT_NAMES = words(
    "there all everyone everybody team folks guys world friend friends sir madam you again so "
    "very much in advance for a an the and to from i we it this that customer support sales "
    "user users colleague colleagues hiring manager morning afternoon evening"
)

# -- fields that hold a name ------------------------------------------------------------------

_NAME_KEY = re.compile(
    r"(?:full|first|last|given|family|middle|display|contact|customer|client|patient|"
    r"employee|user|sender|recipient|author|assignee|owner|guest|passenger|account|holder|"
    r"card|billing|shipping)?[ _-]?(?:name|surname|vorname|nachname|nom|prénom|prenom|"
    r"nombre|apellidos?|nome|cognome|naam|achternaam)s?|author|assignee|recipient|sender|"
    r"patient|addressee|signatory|contact",
    re.IGNORECASE,
)
# The keyword of a name field, then, separately, the whole key before it ("customer_name",
# "Customer name"): one pattern with the key's prefix in it was slow on long text.
_FIELD = re.compile(
    r"(?i)(?:name|surname|author|assignee|recipient|sender|patient|addressee|contact)s?\b"
)
_KEY = re.compile(r"(?:[\w-]+[ _-])?[\w-]*$")
_SEPARATOR = re.compile(r"""["']?[ \t]*[:=][ \t]*["']?""")
_FIELD_VALUE = re.compile(rf"{_CAP}(?:[ \t]+(?:(?:{_PARTICLE})[ \t]+)*{_CAP}){{0,3}}")


@functools.lru_cache(maxsize=1024)  # keys repeat from event to event
def is_name_key(key: str) -> bool:
    """Whether a field called ``key`` holds a person's name (``name``, ``customer_name``)."""
    return len(key) <= 40 and _NAME_KEY.fullmatch(key.strip()) is not None


def looks_like_name(value: str) -> bool:
    """Whether ``value`` is written as a name: a known name, or two to four capitalised words
    (and particles), none in CamelCase ("GetWeather" is a tool, "McKenna" a name)."""
    value = value.strip()
    if len(value) > 80 or _FIELD_VALUE.fullmatch(value) is None:
        return False
    tokens = [t for t in value.split() if t not in _PARTICLES]
    if any(_camel(t) for t in tokens):
        return False
    first, last = _lexicon()
    return len(tokens) > 1 or tokens[0] in first or tokens[0] in last


def _camel(token: str) -> bool:
    inner = token[1:].lstrip("'\u2019")
    if token.startswith(("Mc", "Mac", "O'", "O\u2019", "D'", "D\u2019", "De", "Di", "La", "Le")):
        inner = inner[2:]
    return any(c.isupper() for c in inner if c.isalpha())


def strip_title(name: str) -> str:
    """``name`` without a leading title: "Dr. Okafor" and "Okafor" are one person."""
    return _TITLE_AT_START.sub("", name, count=1)


def find_names(text: str) -> Iterator[Span]:
    yield from _after_greetings(text)
    yield from _signatures(text)
    yield from _in_fields(text)
    yield from _in_running_text(text)


# A signature block: the line after "-- " that is two to four capitalised words.
_SIGNATURE = re.compile(rf"(?m)^--[ \t]*\r?\n[ \t]*({_CAP}(?:[ \t]+{_CAP}){{1,3}})[ \t]*$")


def _signatures(text: str) -> Iterator[Span]:
    if "--" in text:
        for match in _SIGNATURE.finditer(text):
            yield match.span(1)


def _in_fields(text: str) -> Iterator[Span]:
    if ":" not in text and "=" not in text:
        return
    for field in _FIELD.finditer(text):
        separator = _SEPARATOR.match(text, field.end())
        if separator is None:
            continue
        key = _KEY.search(text, max(0, field.start() - 24), field.end())
        if key is None or not is_name_key(key.group(0)):
            continue
        value = _FIELD_VALUE.match(text, separator.end())
        if value is None:
            continue
        ends = text[value.end() : value.end() + 1]
        if ends in ("", '"', "'", "\n", ",", "}", ";") and looks_like_name(value.group(0)):
            yield value.span()


def _in_running_text(text: str) -> Iterator[Span]:
    first, last = _lexicon()
    known = _known()
    for run in _RUN.finditer(text):
        tokens = run.group(0).split()
        title = _TITLE_AT_START.match(run.group(0))
        if title:
            # "Dr. Okafor", "Frau Weber": any capitalised word after a title is a name.
            if len(tokens) > 1 and tokens[-1] not in _NOT_SURNAMES:
                yield run.span()
            continue
        # Most runs are a sentence's first word or an acronym: no known name, nothing to do.
        if not known.isdisjoint(tokens):
            yield from _names_in_run(text, run.start(), tokens, first, last)


def _names_in_run(
    text: str, start: int, tokens: list[str], first: frozenset[str], last: frozenset[str]
) -> Iterator[Span]:
    """The names among one run of capitalised words: a known first name followed by further
    names, or by one capitalised word that ends no company or place; a lone known name only
    with a word around it that makes it a person."""
    position, i = start, 0
    offsets = []
    for token in tokens:
        position = text.index(token, position)
        offsets.append((position, position + len(token)))
        position += len(token)
    while i < len(tokens):
        known_first = tokens[i] in first
        followed_by_surname = i + 1 < len(tokens) and tokens[i + 1] in last
        if i and tokens[i - 1] in _PLACE_FIRST:
            i += 1
            continue
        unknown_ok = tokens[i] not in _COMMON and tokens[i].lower() not in _STREET_BEFORE
        if not known_first and not (followed_by_surname and unknown_ok):
            i += 1
            continue
        j = i
        while j + 1 < len(tokens) and (
            tokens[j + 1] in first or tokens[j + 1] in last or tokens[j + 1] in _PARTICLES
        ):
            j += 1
        while j > i and tokens[j] in _PARTICLES:
            j -= 1
        k = i + 1  # the next capitalised word, past particles: "Luca de Vries"
        while k < len(tokens) and tokens[k] in _PARTICLES:
            k += 1
        if j == i and known_first and k < len(tokens) and tokens[k] not in _NOT_SURNAMES:
            j = k  # a first name and a surname the lists do not have: "Chinedu Okonkwo"
        if j == i and i + 1 < len(tokens) and tokens[i + 1] in last:
            j = i + 1  # a surname the lists have after a first name they do not: "Yuki Ito"
        if j > i and tokens[j] not in _NOT_SURNAMES:
            if not _place_or_company(text, offsets[i][0], offsets[j][1]):
                yield offsets[i][0], offsets[j][1]
        elif tokens[i] in first and _person_around(text, *offsets[i]):
            yield offsets[i]
        i = j + 1
    lone_surname = len(tokens) == 1 and tokens[0] in last and tokens[0] not in first
    if lone_surname and _person_around(text, *offsets[0]):
        yield offsets[0]


def _place_or_company(text: str, start: int, end: int) -> bool:
    """Whether the names at ``text[start:end]`` name a street or a company, not a person."""
    before = _WORD_BEFORE.search(text, max(0, start - 24), start)
    if before and before.group(1).lower() in _STREET_BEFORE:
        return True
    if _NUMBER_BEFORE.search(text, max(0, start - 12), start) or _NUMBER_AFTER.match(text, end):
        return True  # a house number: "58 Andrew Throughway", "Amanda Almeida 613"
    return _COMPANY_AFTER.match(text, end) is not None


def _person_around(text: str, start: int, end: int) -> bool:
    before = _WORD_BEFORE.search(text, max(0, start - 24), start)
    if before and before.group(1).lower() in _BEFORE_ONE_NAME:
        return True
    after = _WORD_AFTER.match(text[end : end + 24])
    if after is None:
        return False
    return after.group(1) is None or after.group(1) in _AFTER_ONE_NAME


def _after_greetings(text: str) -> Iterator[Span]:
    for match in _GREETING.finditer(text):
        start = match.start(1) if match.group(1) else match.start(2)
        kept: list[str] = []
        for word in match.group(2).split():
            bare = word.rstrip(".,!?:;")
            particle = bare in _PARTICLES and bool(kept)
            if not bare or not (bare[0].isupper() or particle) or bare.lower() in _NOT_NAMES:
                break
            kept.append(word)
            if bare != word:  # punctuation ends the name
                break
        while kept and kept[-1].rstrip(".,!?:;") in _PARTICLES:  # "Anna van" ends with a name
            kept.pop()
        if kept:
            yield start, _end_of(text, match.start(2), kept)


def _end_of(text: str, start: int, words: list[str]) -> int:
    """Where the last of ``words`` ends in ``text`` (they follow each other from ``start``)."""
    position = start
    for word in words:
        position = text.index(word, position) + len(word)
    last = words[-1]
    return position - (len(last) - len(last.rstrip(".,!?:;")))
