"""Every reply-field parser over arbitrary text: a value that can be judged, or
ValueError; never another exception, never a non-finite number, never a bool."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ate.drivers.line_client import DeviceError, reply_field
from ate.protocol import fields as f

PARSERS: list[Callable[[str], Any]] = [
    f.as_int,
    f.as_decimal,
    f.as_count,
    f.as_level,
    f.as_finite,
    f.as_hex_bytes,
    f.as_blob,
    f.as_mac,
    f.as_text,
]

# Text that looks like numbers half the time: the interesting cases sit near them.
numberish = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"[-+]?[0-9_.eExXa-fA-F]{0,30}", fullmatch=True),
    st.sampled_from(
        [
            "nan",
            "NaN",
            "-nan",
            "inf",
            "-inf",
            "Infinity",
            "1e999",
            "-1e999",
            "1_000",
            "+5",
            "٣",
            "0x",
            "1e",
            ".",
            "-",
            "0x1g",
            " 1",
            "1 ",
            "\u00a01",
            "0" * 300,
        ]
    ),
    st.floats().map(repr),
)


@pytest.mark.parametrize("parse", PARSERS, ids=lambda p: p.__name__)
@settings(max_examples=800, derandomize=True)
@given(text=numberish)
def test_parsers_return_judgeable_values_or_value_error(
    parse: Callable[[str], Any], text: str
) -> None:
    try:
        value = parse(text)
    except ValueError:
        return
    assert not isinstance(value, bool)
    if isinstance(value, float):
        assert math.isfinite(value)
    if parse in (f.as_count, f.as_level):
        assert value >= 0
    if parse is f.as_level:
        assert value in (0, 1)


@pytest.mark.parametrize(
    "text", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e400", "1_0", "+5", "٣", ""]
)
def test_as_finite_refuses_what_float_accepts(text: str) -> None:
    with pytest.raises(ValueError):
        f.as_finite(text)


@pytest.mark.parametrize("text", ["0", "1.5", "-41.25", "2.5e-3", ".5", "3."])
def test_as_finite_reads_decimal_numbers(text: str) -> None:
    assert f.as_finite(text) == float(text)


def test_a_non_finite_reply_is_a_protocol_error_quoting_the_raw_text() -> None:
    with pytest.raises(DeviceError) as err:
        reply_field({"rssi": "nan"}, "rssi", f.as_finite, "rf.golden")
    assert err.value.code == "EPROTO"
    assert "rssi=nan" in str(err.value)


def test_a_huge_field_is_quoted_short() -> None:
    with pytest.raises(DeviceError) as err:
        reply_field({"ma": "9" * 5000}, "ma", f.as_finite, "isense.read")
    assert len(str(err.value)) < 200 and "5000 characters" in str(err.value)
