from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
import traceback
import zoneinfo

import pytest

from eduzz_webhooks.exceptions import InvalidEnvelope, InvalidEventData
from eduzz_webhooks.payloads import (
    DECODE_DEPTH,
    EARLIEST,
    LATEST,
    nesting,
    parse_datetime,
    parse_envelope,
    parse_file_downloaded,
    read_envelope,
)
from eduzz_webhooks.testing import encode, sample_payload

UTC = dt.UTC


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (b'{"event": "ping"}', "'id' must be a non-empty string"),
        (b'{"id": true, "event": "ping"}', "'id' must be a non-empty string"),
        (b'{"id": "  ", "event": "ping"}', "'id' must be a non-empty string"),
        (b'{"id": "1"}', "'event' must be a non-empty string"),
        (b'{"id": "1", "event": null}', "'event' must be a non-empty string"),
        (b'{"id": "1", "event": "x", "n": NaN}', "not valid JSON"),
        (b'{"id": "1", "event": "x", "n": 1e999}', "not valid JSON"),
        (b'{"id": "1", "event": "x", "n": ' + b"[" * 40 + b"]" * 40 + b"}", "nested too deeply"),
        (b"[" * 100000, "nested too deeply"),
    ],
)
def test_bad_envelopes_say_what_is_wrong(body, message):
    assert message in read_envelope(body).error
    with pytest.raises(InvalidEnvelope, match=message):
        parse_envelope(body)


def nested(levels):
    """An envelope whose deepest value has ``levels`` arrays and objects open around it."""
    inner = '[{"b":' * ((levels - 1) // 2) + "[" * ((levels - 1) % 2)
    closing = "]" * ((levels - 1) % 2) + "}]" * ((levels - 1) // 2)
    data = inner + '"[{ in a string"' + closing
    body = ('{"id":"deep","event":"x","data":' + data + "}").encode()
    assert nesting(body.decode()) == levels
    return body


def test_a_too_deep_body_keeps_its_id_when_it_can_be_decoded():
    envelope = read_envelope(nested(DECODE_DEPTH))
    assert (envelope.event_id, envelope.event_type) == ("deep", "x")
    assert "nested too deeply" in envelope.error


def test_a_body_nested_past_the_decoding_depth_is_not_decoded():
    body = nested(DECODE_DEPTH + 1)
    envelope = read_envelope(body)
    assert envelope.event_id == "sha256:" + hashlib.sha256(body).hexdigest()
    assert "nested too deeply" in envelope.error
    assert envelope.payload == body.decode()


@pytest.mark.parametrize("levels", [DECODE_DEPTH, 400, 5000])
def test_how_a_deep_body_is_read_does_not_depend_on_the_callers_stack(levels):
    body = nested(levels)

    def called_with(frames_left):
        def deeper(n):
            return read_envelope(body) if n == 0 else deeper(n - 1)

        return deeper(sys.getrecursionlimit() - len(traceback.extract_stack()) - frames_left)

    assert called_with(300) == read_envelope(body)


def test_envelope_fields():
    payload = sample_payload("nutror.file_downloaded", fresh_id=False)
    envelope = parse_envelope(encode(payload))
    assert envelope.event_id == "iu6uf3b0nw6gc4oc8565rqwdm"
    assert envelope.event_type == "nutror.file_downloaded"
    assert envelope.sent_at == dt.datetime(2024, 2, 29, 14, 33, 3, 663000, tzinfo=UTC)
    assert envelope.payload == payload
    assert envelope.data == payload["data"]


@pytest.mark.parametrize(
    ("body", "number"),
    [
        (b'{"id": "1", "event": "x", "data": {"n": 1e-20000}}', 0.0),  # underflows to zero
        (b'{"id": "1", "event": "x", "data": {"n": 2E3}}', 2000.0),
        (b'{"id": "1", "event": "x", "data": {"n": 0.' + b"0" * 30 + b"1}}", 1e-31),
    ],
)
def test_numbers_of_any_spelling_parse_to_floats_every_database_stores(body, number):
    assert parse_envelope(body).payload["data"]["n"] == number


@pytest.mark.parametrize("literal", [b"1e400", b"-1e400", b"NaN", b"Infinity"])
def test_numbers_no_database_stores_are_not_json(literal):
    with pytest.raises(InvalidEnvelope, match="not valid JSON"):
        parse_envelope(b'{"id": "1", "event": "x", "data": {"n": ' + literal + b"}}")


def test_nul_and_lone_surrogates_are_replaced_so_any_database_stores_them():
    body = b'{"id": "1", "event": "x", "data": {"a\\u0000": "b\\u0000c", "s": "\\ud800"}}'
    envelope = parse_envelope(body)
    assert envelope.payload["data"] == {"a\ufffd": "b\ufffdc", "s": "\ufffd"}
    json.dumps(envelope.payload).encode("utf-8")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-09-25T19:04:09Z", dt.datetime(2023, 9, 25, 19, 4, 9, tzinfo=UTC)),
        ("2023-08-31T18:34:23.023Z", dt.datetime(2023, 8, 31, 18, 34, 23, 23000, tzinfo=UTC)),
        # No zone: the default NAIVE_DATETIME_TIMEZONE, America/Sao_Paulo (UTC-3).
        ("2023-09-06 17:32:14", dt.datetime(2023, 9, 6, 20, 32, 14, tzinfo=UTC)),
        ("2023-09-06T17:32:14-03:00", dt.datetime(2023, 9, 6, 20, 32, 14, tzinfo=UTC)),
        ("yesterday", None),
        (20230906, None),
        (None, None),
    ],
)
def test_parse_datetime_accepts_every_documented_form(text, expected):
    assert parse_datetime(text) == expected


def test_naive_timezone_is_a_setting(settings):
    settings.EDUZZ_WEBHOOKS = {**settings.EDUZZ_WEBHOOKS, "NAIVE_DATETIME_TIMEZONE": "UTC"}
    assert parse_datetime("2023-09-06 17:32:14") == dt.datetime(2023, 9, 6, 17, 32, 14, tzinfo=UTC)


def file_data(**changes):
    data = sample_payload("nutror.file_downloaded")["data"]
    data.update(changes)
    return data


def test_file_downloaded_sample():
    parsed = parse_file_downloaded(file_data())
    assert parsed.learner_email == "learner@eduzz.com"
    assert parsed.learner_name == "Ciclano da Silva"
    assert parsed.producer_email == "fulano@eduzz.com"
    assert parsed.producer_eduzz_id == ""
    assert parsed.course_hash == "4bba1d18c02755a13ee97521ae61958c3cf9e665"
    assert parsed.course_title == "Título do Curso"
    assert parsed.lesson_id == "3865"
    assert parsed.lesson_title == "Título da Aula"
    assert parsed.downloaded_at == dt.datetime(2023, 9, 25, 19, 4, 9, tzinfo=UTC)


def test_courses_list_instead_of_course_object():
    data = file_data(courses=[{"hash": "h1", "title": "One"}, {"hash": "h2", "title": "Two"}])
    del data["course"]
    parsed = parse_file_downloaded(data)
    assert (parsed.course_hash, parsed.course_title) == ("h1", "One")


@pytest.mark.parametrize(("eduzz_id", "expected"), [(12345, "12345"), ("abc", "abc"), (None, "")])
def test_producer_eduzz_id_string_number_or_absent(eduzz_id, expected):
    producer = {"email": "p@example.com", "name": "P"}
    if eduzz_id is not None:
        producer["eduzzId"] = eduzz_id
    assert parse_file_downloaded(file_data(producer=producer)).producer_eduzz_id == expected


def test_numeric_identifiers_unknown_fields_and_email_case():
    data = file_data(
        lesson={"id": 3865, "title": "Aula", "extra": [1]},
        learner={"email": " Ana@Example.COM ", "name": "Ana", "phone": "x"},
        somethingNew={"nested": True},
    )
    parsed = parse_file_downloaded(data)
    assert parsed.lesson_id == "3865"
    assert parsed.learner_email == "ana@example.com"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"learner": {"name": "No e-mail"}}, "data.learner.email"),
        ({"learner": {"email": "not-an-email"}}, "data.learner.email"),
        ({"lesson": {"title": "no id"}}, "data.lesson.id"),
        ({"lesson": {"id": True}}, "data.lesson.id"),
        ({"createdAt": "soon"}, "data.createdAt"),
        ({"course": None}, "data.course"),
        ({"producer": "fulano"}, "data.producer"),
    ],
)
def test_unusable_data_names_the_field(change, field):
    with pytest.raises(InvalidEventData, match=field.replace(".", r"\.")):
        parse_file_downloaded(file_data(**change))


def test_data_not_an_object():
    with pytest.raises(InvalidEventData, match=r"^data: "):
        parse_file_downloaded(["x"])


# -- found by tests/test_fuzz.py -------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01T00:00:00+14:00",  # year 0 in UTC
        "9999-12-31T23:59:59-01:00",  # year 10000 in UTC
        "9999-12-31 23:59:59",  # naive, so UTC-3: year 10000 in UTC
        "0001-01-01T00:00Z",  # in UTC-3 this is year 0: no page could show it
        "9999-12-31T23:59Z",  # in UTC+3, year 10000
        "0001-01-02T00:00:00Z",  # its year, 1, starts in year 0 in UTC+14
        "9999-12-30T23:59:59Z",  # its year, 9999, ends in year 10000 west of UTC
        "0002-01-01T23:59:59.999999Z",  # just before EARLIEST: in UTC-12, year 1
        "9998-12-31T00:00:00Z",  # just after LATEST: in UTC+14, year 9999
        "2023-09-25T19:04:09+23:59",  # no time zone is 24 hours from UTC
        "2023-09-25T19:04:09+16:00",
        "2023-09-25T19:04:09-14:01",
    ],
)
def test_instants_not_every_time_zone_can_show_are_not_date_times(text):
    assert parse_datetime(text) is None
    with pytest.raises(InvalidEventData, match=r"^data\.createdAt: "):
        parse_file_downloaded(file_data(createdAt=text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0002-01-02T00:00:00Z", EARLIEST),
        ("0002-01-02T14:00:00+14:00", EARLIEST),
        ("9998-12-30T23:59:59.999999Z", LATEST),
        ("9998-12-30T11:59:59.999999-12:00", LATEST),
        ("9998-12-30 20:59:59", dt.datetime(9998, 12, 30, 23, 59, 59, tzinfo=UTC)),
        ("2023-09-25T19:04:09+14:00", dt.datetime(2023, 9, 25, 5, 4, 9, tzinfo=UTC)),
        ("2023-09-25T19:04:09-12:00", dt.datetime(2023, 9, 26, 7, 4, 9, tzinfo=UTC)),
    ],
)
def test_date_times_every_time_zone_can_show_are_kept_in_utc(text, expected):
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize("instant", [EARLIEST, LATEST])
def test_kept_dates_lie_within_years_2_to_9998_in_every_time_zone(instant):
    """So that their day, month and year, and the start of the next, exist in every zone."""
    for name in zoneinfo.available_timezones():
        local = instant.astimezone(zoneinfo.ZoneInfo(name))
        assert 2 <= local.year <= 9998, (name, local)


def test_email_length_is_checked_on_the_lowercased_address():
    # U+0130 lowercases to two characters: 130 characters become 255, over the 254 limit.
    longest = "\u0130" * 124 + "@x.co"
    assert len(longest.lower()) == 253
    parsed = parse_file_downloaded(file_data(learner={"email": longest, "name": "x"}))
    assert parsed.learner_email == longest.lower()
    too_long = "\u0130" + longest
    with pytest.raises(InvalidEventData, match=r"^data\.learner\.email: .*254"):
        parse_file_downloaded(file_data(learner={"email": too_long, "name": "x"}))


@pytest.mark.parametrize(
    "sent",
    [
        "josé@example.com",
        "jose\u0301@example.com",  # NFD: e and a combining acute accent
        "JOSE\u0301@EXAMPLE.COM",
        " JOSÉ@Example.com ",
    ],
)
def test_email_in_any_case_and_normal_form_is_one_address(sent):
    parsed = parse_file_downloaded(file_data(learner={"email": sent, "name": "José"}))
    assert parsed.learner_email == "josé@example.com"
