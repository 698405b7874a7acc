"""Phone normalisation: the one normal form the tracker, the directory and the importer share."""

from __future__ import annotations

import pytest

from callpop.phones import format_display, is_withheld, phone_key


@pytest.mark.parametrize("raw", ["8 (916) 123-45-67", "+7 916 1234567", "79161234567", "89161234567",
                                 "+79161234567", "0079161234567", "810 7 916 123 45 67", " 8-916-123-45-67 ",
                                 "8.916.123.45.67", "9161234567"])
def test_russian_mobile_in_every_usual_spelling_is_one_number(raw: str) -> None:
    key = phone_key(raw, "RU")
    assert (key.e164, key.tail10, key.external) == ("+79161234567", "9161234567", True)


def test_moscow_495_and_985_keep_distinct_tails() -> None:
    a, b = phone_key("+7 495 123-45-67"), phone_key("+7 985 123-45-67")
    assert a.e164 != b.e164 and a.tail10 == "4951234567" and b.tail10 == "9851234567"


@pytest.mark.parametrize("raw", ["", "   ", "anonymous", "Anonymous", "<unknown>", "restricted", "PRIVATE",
                                 "unavailable", "withheld", "s", "+31260xxxxxx"])
def test_withheld_callers_have_no_key(raw: str) -> None:
    key = phone_key(raw)
    assert is_withheld(raw) and not key.external and key.e164 is None and key.tail10 is None


@pytest.mark.parametrize("raw", ["101", "2002", "12345", "123456"])
def test_short_internal_numbers_are_not_external(raw: str) -> None:
    assert not phone_key(raw, "RU", 7).external


def test_min_external_digits_is_a_setting() -> None:
    assert phone_key("1234567", "RU", 7).external
    assert not phone_key("1234567", "RU", 8).external


def test_foreign_numbers_keep_their_country() -> None:
    uk = phone_key("+44 20 7946 0958", "RU")
    assert uk.e164 == "+442079460958" and uk.tail10 == "2079460958"
    assert phone_key("0044 20 7946 0958", "RU").e164 == "+442079460958"
    # a national UK number read in the UK region
    assert phone_key("020 7946 0958", "GB").e164 == "+442079460958"
    # ... and in the RU region it is not a Russian number, but its tail still matches
    ru_view = phone_key("020 7946 0958", "RU")
    assert ru_view.e164 is None and ru_view.tail10 == "2079460958"


def test_extension_typed_after_the_number_is_ignored_but_raw_is_kept() -> None:
    for raw in ("+7 916 123-45-67 доб. 12", "8 (916) 123-45-67 ext 5", "+7 916 1234567 x3", "+79161234567#45"):
        key = phone_key(raw)
        assert key.e164 == "+79161234567", raw
        assert key.raw == raw
    assert phone_key("8 (916) 123-45-67 доб").e164 is None  # "доб" without a number is not an extension


@pytest.mark.parametrize("raw", ["abc", "+7 916 ABC 45 67", "<script>1234567</script>", "9161234567; DROP"])
def test_text_that_is_not_a_number_is_not_looked_up(raw: str) -> None:
    key = phone_key(raw)
    assert not key.external and key.e164 is None


def test_display_form() -> None:
    assert format_display("+79161234567") == "+7 916 123-45-67"
    assert format_display("+442079460958") == "+44 20 7946 0958"
    assert format_display("garbage") == "garbage"
    assert format_display(None) == "" and format_display("") == ""
    assert phone_key("+79161234567").display_key == "+79161234567"
    assert phone_key("2079460958x").display_key == "2079460958x"


@pytest.mark.parametrize("raw", ["+7916123456789012345", "+70000000000", "+7 000 123 45 67", "+7 123 456 78 90",
                                 "12345678901234", "0000000000", "+1 441 112 233"])
def test_junk_numbers_get_no_fallback_tail(raw: str) -> None:
    key = phone_key(raw, "RU")
    assert (key.e164, key.tail10) == (None, None)


def test_possible_but_unassigned_numbers_keep_their_tail() -> None:
    # shaped like its country's numbers (a range newer than the metadata, say): still a fallback key
    assert phone_key("+1 999 999 9999", "RU").tail10 == "9999999999"
    # a plain national number with its trunk prefix, country unknown: the tail is all we have
    assert phone_key("8 207 946 09 58", "RU").tail10 == "2079460958"
