"""Rate-limit headers of hosted providers: OpenAI and Anthropic families, Retry-After."""

from __future__ import annotations

import datetime as dt

import pytest

from hermes_sdk.server.provider_limits import (
    LimitWindow,
    ProviderLimits,
    parse_duration_s,
    parse_limits,
)

NOW = dt.datetime(2026, 12, 3, 12, 0, 0, tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6m0s", 360.0),
        ("1s", 1.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("0.5s", 0.5),
        ("17", 17.0),
        ("2m", 120.0),
        ("", None),
        ("6x", None),
        ("-1s", None),
        ("1s6m", 361.0),  # order is not checked; every part is a known unit
        ("ms", None),
        ("1s ", 1.0),
    ],
)
def test_openai_durations(text: str, seconds: float | None) -> None:
    got = parse_duration_s(text)
    assert got == (None if seconds is None else pytest.approx(seconds))


def test_openai_family() -> None:
    headers = {
        "X-RateLimit-Limit-Requests": "5000",
        "x-ratelimit-limit-tokens": "160000",
        "x-ratelimit-remaining-requests": "4999",
        "x-ratelimit-remaining-tokens": "159976",
        "x-ratelimit-reset-requests": "12ms",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    limits = parse_limits(headers, NOW)
    assert limits.requests == LimitWindow(5000, 4999, pytest.approx(0.012))  # type: ignore[arg-type]
    assert limits.tokens == LimitWindow(160000, 159976, 360.0)
    assert limits.retry_after_s is None and not limits.empty


def test_anthropic_family() -> None:
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2026-12-03T12:00:01Z",
        "anthropic-ratelimit-tokens-limit": "80000",
        "anthropic-ratelimit-tokens-remaining": "79000",
        "anthropic-ratelimit-tokens-reset": "2026-12-03T12:00:30+00:00",
        "anthropic-ratelimit-input-tokens-limit": "40000",
        "anthropic-ratelimit-input-tokens-remaining": "39500",
        "anthropic-ratelimit-input-tokens-reset": "2026-12-03T11:59:00Z",  # past: 0 s
        "anthropic-ratelimit-output-tokens-limit": "8000",
        "anthropic-ratelimit-output-tokens-remaining": "7500",
        "anthropic-ratelimit-output-tokens-reset": "2026-12-03T12:00:06Z",
        "retry-after": "3",
    }
    limits = parse_limits(headers, NOW)
    assert limits.requests == LimitWindow(50, 49, 1.0)
    assert limits.tokens == LimitWindow(80000, 79000, 30.0)
    assert limits.input_tokens == LimitWindow(40000, 39500, 0.0)
    assert limits.output_tokens == LimitWindow(8000, 7500, 6.0)
    assert limits.retry_after_s == 3.0


def test_missing_headers_say_nothing() -> None:
    assert parse_limits({}, NOW) == ProviderLimits()
    assert parse_limits({"content-type": "application/json"}, NOW).empty
    only = parse_limits({"x-ratelimit-remaining-tokens": "10"}, NOW)
    assert only.tokens == LimitWindow(None, 10, None) and only.requests == LimitWindow()


@pytest.mark.parametrize(
    "headers",
    [
        {"x-ratelimit-limit-tokens": "-1", "x-ratelimit-remaining-tokens": "-1"},  # Azure's
        {"x-ratelimit-limit-tokens": "lots", "x-ratelimit-remaining-tokens": "1.5"},
        {"x-ratelimit-limit-tokens": "nan", "x-ratelimit-reset-tokens": "soon"},
        {"x-ratelimit-limit-tokens": "inf", "x-ratelimit-remaining-tokens": ""},
        {"x-ratelimit-limit-tokens": "0"},  # a limit of 0 is no budget
        {"anthropic-ratelimit-tokens-reset": "2026-12-03 12:00"},  # no offset
        {"anthropic-ratelimit-tokens-reset": "tomorrow"},
        {"retry-after": "-5"},
        {"retry-after": "Wed, 21 Oct 2015 07:28:00"},  # a date without a zone
        {"retry-after": "999999"},  # beyond an hour
        {"retry-after-ms": "abc"},
    ],
)
def test_malformed_values_are_none(headers: dict[str, str]) -> None:
    assert parse_limits(headers, NOW) == ProviderLimits()


def test_retry_after_forms() -> None:
    assert parse_limits({"retry-after": "2"}, NOW).retry_after_s == 2.0
    assert parse_limits({"retry-after": "0.25"}, NOW).retry_after_s == 0.25
    both = {"retry-after": "2", "retry-after-ms": "1500"}
    assert parse_limits(both, NOW).retry_after_s == 1.5  # milliseconds win, as in openai
    date = "Thu, 03 Dec 2026 12:00:05 GMT"
    assert parse_limits({"Retry-After": date}, NOW).retry_after_s == pytest.approx(5.0)
    bad_ms = {"retry-after": "4", "retry-after-ms": "oops"}
    assert parse_limits(bad_ms, NOW).retry_after_s == 4.0


def test_contradictory_values() -> None:
    # a remaining above its limit: the remaining is dropped, the limit kept
    above = {"x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "500"}
    assert parse_limits(above, NOW).requests == LimitWindow(100, None, None)
    # both families at once disagree: the more restrictive of each value wins
    both = {
        "x-ratelimit-limit-tokens": "90000",
        "x-ratelimit-remaining-tokens": "500",
        "x-ratelimit-reset-tokens": "2s",
        "anthropic-ratelimit-tokens-limit": "80000",
        "anthropic-ratelimit-tokens-remaining": "70000",
        "anthropic-ratelimit-tokens-reset": "2026-12-03T12:00:30Z",
    }
    assert parse_limits(both, NOW).tokens == LimitWindow(80000, 500, 2.0)
    # the families disagree so that the kept remaining exceeds the kept limit: dropped
    crossed = {
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "900",
        "anthropic-ratelimit-tokens-limit": "80000",
        "anthropic-ratelimit-tokens-remaining": "5000",
    }
    assert parse_limits(crossed, NOW).tokens == LimitWindow(1000, 900, None)
