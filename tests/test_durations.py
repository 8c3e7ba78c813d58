"""Durations as people write them (`90s`, `1h30m`, a bare number of hours) and as we print them."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from orchestrator.config.durations import format_duration, parse_duration
from orchestrator.errors import InputError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("30m", 1800.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("250ms", 0.25),
        ("1h30m", 5400.0),
        ("2m30s", 150.0),
        ("1d2h3m4s", 93784.0),
        ("1h 30m", 5400.0),
        ("1H30M", 5400.0),
        ("  45m  ", 2700.0),
        ("1.5h", 5400.0),
        ("0.5s", 0.5),
        ("2", 7200.0),
        ("1.5", 5400.0),
        (" 3 ", 10800.0),
    ],
)
def test_parses_units_and_compound_forms(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_a_bare_number_takes_the_bare_unit() -> None:
    assert parse_duration(2) == 7200.0
    assert parse_duration(0.25) == 900.0
    assert parse_duration(90, bare_unit="s") == 90.0
    assert parse_duration("90", bare_unit="s") == 90.0
    assert parse_duration("5", bare_unit="m") == 300.0
    assert parse_duration("7", bare_unit="d") == 7 * 86400.0
    assert parse_duration("1500", bare_unit="ms") == 1.5
    assert parse_duration("2m", bare_unit="s") == 120.0  # a unit written wins over the bare unit


@pytest.mark.parametrize("text", ["", "   ", "abc", "1x", "h", "1h-30m", "1h30", "30 minutes", ".5h", "1.h", "-1h",
                                  "1h,30m", "1e3s", "m30"])
def test_anything_else_is_refused_naming_the_setting(text: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_duration(text, what="--timeout")
    assert str(caught.value) == f"--timeout: {text!r} is not a duration (use e.g. 90s, 30m, 2h)"


def test_true_and_false_are_not_numbers_of_hours() -> None:
    for value in (True, False):
        with pytest.raises(InputError, match=rf"^duration: {value} is not a duration \(use e\.g\. 90s, 30m, 2h\)$"):
            parse_duration(value)


@pytest.mark.parametrize("value", ["0s", "0", "0h0m", 0, 0.0, -1, "0ms"])
def test_zero_or_less_is_refused(value: str | int | float) -> None:
    with pytest.raises(InputError) as caught:
        parse_duration(value, what="timeout")
    assert str(caught.value) == f"timeout: {value!r} must be longer than zero"


def test_the_smallest_positive_duration_is_accepted() -> None:
    assert parse_duration("1ms") == 0.001
    assert parse_duration(0.001, bare_unit="s") == 0.001


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0ms"),
        (0.85, "850ms"),
        (0.0004, "0ms"),
        (0.9994, "999ms"),
        (1.0, "1.0s"),
        (42.0, "42.0s"),
        (59.94, "59.9s"),
        (60.0, "1m00s"),
        (185.0, "3m05s"),
        (185.4, "3m05s"),
        (185.6, "3m06s"),
        (3599.0, "59m59s"),
        (3599.6, "1h00m"),
        (3600.0, "1h00m"),
        (3720.0, "1h02m"),
        (5400.0, "1h30m"),
        (5429.0, "1h30m"),
        (36000.0, "10h00m"),
        (90000.0, "25h00m"),
    ],
)
def test_format_is_short_and_exact_at_each_boundary(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=60, max_value=10 * 86400))
def test_what_is_printed_parses_back(seconds: int) -> None:
    # Seconds are shown below an hour, whole minutes from an hour on.
    expected = seconds if seconds < 3600 else (seconds // 60) * 60
    assert parse_duration(format_duration(seconds)) == expected
