"""PII redaction is precise on numbers: digit runs that are not personal data in their context
stay as they are, and a phone number is redacted when it is written as one."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmtap.pii import redact_text, redact_value

INTACT = [
    # timestamps
    "The job started at 1700000000 and has not finished.",
    '{"event": "click", "ts": 1700000000123}',
    "created_at=1712345678, updated_at=1712349999",
    "Deadline: 2024-11-04T18:30:00Z; reminder at 2024-11-03 09:15:00.",
    # book and object ids
    "Cite ISBN 978-3-16-148410-0 and 0-306-40615-2, also 9783161484100.",
    "Trace 550e8400-e29b-41d4-a716-446655440000 failed; sha256 "
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08.",
    "Upgrade from 3.19.0 to 3.20.1.4 tonight; kernel 5.15.0.91 is fine.",
    # order, invoice and tracking numbers
    "Order 4155550132 was split into two parcels.",
    "Invoice no. 2024-000187 is overdue; invoice 3331234567 too.",
    "FedEx tracking number 771234567890, UPS 1Z999AA10123456784.",
    "USPS tracking 9400 1112 0208 2345 6789 01",
    # prices, measurements, coordinates, ports, durations
    "The plan costs €1,299.00 per year, or $129.99 a month (4155550132 cents lifetime).",
    "The panel is 1200 mm x 2400 mm and weighs 42.5 kg; 1500000 units shipped.",
    "Meet at 48.858370, 2.294481 or -33.856784, 151.215297.",
    "The service listens on 0.0.0.0:8443 and 127.0.0.1:5432.",
    "It took 86400000 ms (24 h) to index 123,456,789 rows.",
    # code and JSON whose field names say what the numbers are
    "for i in range(1000000000):\n    total += i % 97",
    "time.sleep(3600); assert n == 4155550132",
    '{"user_id": 4155550132, "session": "3331234567", "amount_cents": 912345678}',
    "Call volume was 12345 on day 12, case 123456789 closed.",
]


@pytest.mark.parametrize("text", INTACT)
def test_numbers_that_are_not_personal_data_stay(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize(
    "text, number",
    [
        ("Call me on (415) 555-0132 tomorrow.", "(415) 555-0132"),
        ("Office: 415-555-0132", "415-555-0132"),
        ("Our London desk is +44 20 7946 0958.", "+44 20 7946 0958"),
        ("Dial 0044 20 7946 0958 from abroad", "0044 20 7946 0958"),
        ("Schreib an 030 12345678 oder ruf an", "030 12345678"),
        ("Mon portable : 06 12 34 56 78", "06 12 34 56 78"),
        ("Customer phone: 4155550132", "4155550132"),  # a bare run after a phone word
    ],
)
def test_phone_numbers_written_as_one_are_redacted(text: str, number: str) -> None:
    redacted = redact_text(text)
    assert number not in redacted.replace("<PHONE_NUMBER>", "|"), redacted
    assert "<PHONE_NUMBER>" in redacted


def test_the_json_id_next_to_a_phone_stays() -> None:
    assert redact_text('{"phone": "3331234567", "order_id": 3331234567}') == (
        '{"phone": "<PHONE_NUMBER>", "order_id": 3331234567}'
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Please forward this to Priya Raman before Friday.", "forward this to <PERSON> before"),
        ("Dr. Okafor said the results are in.", "<PERSON> said the results"),
        ("Frau Weber hat angerufen.", "<PERSON> hat angerufen"),
        ("Can you ask Priya whether the Q3 numbers are final?", "ask <PERSON> whether"),
        ("Summarise: Yuki Tanaka and Lars Nowak agreed.", "<PERSON> and <PERSON> agreed"),
        ("Thanks.\n\n--\nChinedu Okonkwo\nStaff Engineer, Initech", "--\n<PERSON>\nStaff"),
        ('{"name": "Mei Chen", "order_id": 123456789}', '{"name": "<PERSON>", "order_id": 123'),
        ("Customer name: Anna van der Berg\nTier: gold", "Customer name: <PERSON>\nTier"),
        ("According to Luca de Vries, it failed.", "According to <PERSON>, it failed."),
    ],
)
def test_names_in_running_text_are_redacted(text: str, expected: str) -> None:
    assert expected in redact_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "Aurora Health opened an office in São Paulo and San Diego in May.",
        "Ship it to Northwind Traders GmbH, attention of the warehouse.",
        '{"type": "function", "function": {"name": "GetWeather"}, "name": "lookup_order"}',
        "The invoice for Cooper, Baker and Poole is due on 2024-03-11.",
        "Will the Grant Street office open on Monday?",
    ],
)
def test_capitalised_words_that_are_no_person_stay(text: str) -> None:
    assert redact_text(text) == text


_PIECES = st.sampled_from(
    ["Priya Raman", "Dr.", "Hi", "--\n", '"name": ', "{", "}", "[", "]", ":", " ", "\n", "de",
     "1700000000", "978-3-16-148410-0", "+44 20 7946 0958", "(415) 555-0132", "4111 1111 1111 "
     "1111", "10.0.0.1", "v1.2.3.4", "order", "call", "ana@example.com", "Ünïcödé", "\x00", "'"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(_PIECES, st.text(max_size=12)), max_size=40),
    st.sampled_from([" ", "\n", ", ", ": ", "\t", "; "]),
)
def test_any_mix_of_pieces_is_redacted_without_error(pieces: list[str], separator: str) -> None:
    """Pieces as people write them, next to each other (not glued into one word)."""
    text = separator.join(pieces)
    out = redact_value({"text": text, "json": json.dumps({"k": text}), text: 1})
    assert isinstance(out["text"], str) and "<REDACTION_FAILED>" not in json.dumps(out)
    for secret in ("ana@example.com", "7946 0958", "555-0132"):
        assert secret not in json.dumps(out, ensure_ascii=False)
