import pytest
from hypothesis import given, strategies as st

from stuckgen.durations import format_duration, parse_duration
from stuckgen.errors import ConfigError


@pytest.mark.parametrize("text,seconds", [
    ("90s", 90), ("2m", 120), ("1h30m", 5400), ("1.5h", 5400), ("PT2M", 120), ("pt2m", 120),
    ("P1DT2H", 93600), ("PT1H30M", 5400), ("500ms", 0.5), ("1d", 86400), (" 2m ", 120), ("1w", 604800),
])
def test_parse_duration_accepts_human_and_iso_forms(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "2", "2x", "m2", "1h-30m", "P", "PT", "2 minutes", "1h30", "-5m", "P1X"])
def test_parse_duration_rejects_garbage_naming_the_option(text):
    with pytest.raises(ConfigError) as exc:
        parse_duration(text, option="--threshold")
    assert exc.value.message.startswith("--threshold:")


@given(st.text(max_size=30))
def test_parse_duration_never_raises_anything_but_config_error(text):
    try:
        value = parse_duration(text)
    except ConfigError:
        return
    assert value >= 0


@given(st.integers(min_value=0, max_value=10**7))
def test_format_then_parse_roundtrips_within_a_unit(n):
    text = format_duration(n)
    assert abs(parse_duration(text) - n) <= (60 if n >= 3600 else 0) + (3600 if n >= 86400 else 0)
