"""Session cookie parsing: chunks, base64- values, JWT exp, Netscape files, and garbage."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stuckgen.cookies import CookieInfo, load_cookie_file, parse_cookies
from stuckgen.errors import ConfigError, StuckgenError
from stuckgen.reference.cookies import cookie_header, make_session_cookie, sign_jwt

NOW = 1_800_000_000.0
USER = "6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"


def header(**kw: object) -> str:
    return cookie_header(make_session_cookie(USER, project_ref="abcd", now=NOW, **kw))  # type: ignore[arg-type]


def test_single_cookie_decodes_subject_and_expiry() -> None:
    info = parse_cookies(header(expires_in=3600), now=NOW + 600)
    assert info.auth_cookie == "sb-abcd-auth-token"
    assert info.project_ref == "abcd"
    assert info.chunk_count == 1
    assert info.base64_prefixed
    assert info.subject == USER
    assert info.exp == int(NOW) + 3600
    assert info.seconds_to_expiry == pytest.approx(3000)
    assert info.usable and not info.expired and not info.oversized
    assert info.problems == ()


def test_chunked_cookie_is_reassembled_in_index_order() -> None:
    cookies = make_session_cookie(USER, project_ref="abcd", now=NOW, expires_in=3600, metadata_padding=7000)
    assert len(cookies) >= 3
    reversed_header = cookie_header(dict(reversed(list(cookies.items()))))
    info = parse_cookies("theme=dark; " + reversed_header, now=NOW)
    assert info.chunk_count == len(cookies)
    assert info.subject == USER
    assert info.names[0] == "theme"
    # Only the auth cookies are sent on; the unrelated one stays home.
    assert "theme" not in info.header


def test_missing_chunk_is_a_problem_not_a_crash() -> None:
    cookies = make_session_cookie(USER, project_ref="abcd", now=NOW, expires_in=3600, metadata_padding=7000)
    del cookies["sb-abcd-auth-token.1"]
    info = parse_cookies(cookie_header(cookies), now=NOW)
    assert not info.usable
    assert any("chunk(s) .1 missing" in p for p in info.problems)


def test_expired_cookie() -> None:
    info = parse_cookies(header(expires_in=-60), now=NOW)
    assert info.expired
    assert info.seconds_to_expiry == pytest.approx(-60)


def test_oversized_cookie() -> None:
    info = parse_cookies(header(expires_in=3600, metadata_padding=20000), now=NOW)
    assert info.oversized
    assert info.chunk_count > 4


def test_cookie_header_prefix_and_quotes_are_tolerated() -> None:
    name, value = next(iter(make_session_cookie(USER, project_ref="abcd", now=NOW, expires_in=60).items()))
    info = parse_cookies(f'Cookie: {name}="{value}"', now=NOW)
    assert info.subject == USER


def test_old_auth_helpers_array_form_is_flagged_as_the_library_discards_it() -> None:
    # @supabase/ssr (auth-js _isValidSession) throws the array away: the user is signed out.
    token = sign_jwt({"sub": USER, "exp": int(NOW) + 10})
    value = quote(json.dumps([token, "refresh", None, None, None]))
    info = parse_cookies(f"sb-abcd-auth-token={value}", now=NOW)
    assert not info.usable and info.header == ""
    assert any("auth-helpers array" in p and "signed out" in p for p in info.problems)


def test_netscape_cookie_file(tmp_path) -> None:
    cookies = make_session_cookie(USER, project_ref="abcd", now=NOW, expires_in=3600, metadata_padding=4000)
    lines = ["# Netscape HTTP Cookie File", ""]
    for i, (name, value) in enumerate(cookies.items()):
        prefix = "#HttpOnly_" if i == 0 else ""
        lines.append(f"{prefix}app.example.com\tFALSE\t/\tTRUE\t{int(NOW) + 3600}\t{name}\t{value}")
    lines.append("app.example.com\tFALSE\t/\tFALSE\t0\tother\tx")
    path = tmp_path / "cookies.txt"
    path.write_text("\n".join(lines) + "\n")
    info = load_cookie_file(path, now=NOW)
    assert info.chunk_count == len(cookies) >= 2
    assert info.subject == USER
    assert "other" in info.names


def test_unreadable_cookie_file_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot read cookie file"):
        load_cookie_file(tmp_path / "nope.txt", now=NOW)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no name=value cookie"),
        ("just words", "no name=value cookie"),
        ("session=abc", "no sb-<project-ref>-auth-token"),
        ("sb-abcd-auth-token=base64-!!!notbase64", "neither base64- JSON"),
        ("sb-abcd-auth-token=base64-" + base64.urlsafe_b64encode(b"[1,2]").decode(), "not a session object"),
        ("sb-abcd-auth-token=base64-" + base64.urlsafe_b64encode(b'{"a":1}').decode(), "no access_token"),
        ("sb-abcd-auth-token=base64-" + base64.urlsafe_b64encode(b'{"access_token":"x.y"}').decode(),
         "no refresh_token, expires_at"),
        ("sb-abcd-auth-token=base64-" + base64.urlsafe_b64encode(
            b'{"access_token":"x.y","refresh_token":"r","expires_at":1}').decode(), "not a decodable JWT"),
    ],
)
def test_garbage_yields_a_clear_problem(text: str, problem: str) -> None:
    info = parse_cookies(text, now=NOW)
    assert not info.usable
    assert any(problem in p for p in info.problems), info.problems


def test_jwt_without_plausible_exp() -> None:
    token = sign_jwt({"sub": USER, "exp": "tomorrow"})
    session = {"access_token": token, "refresh_token": "r", "expires_at": int(NOW) + 60}
    value = "base64-" + base64.urlsafe_b64encode(json.dumps(session).encode()).decode()
    info = parse_cookies(f"sb-abcd-auth-token={value}", now=NOW)
    assert info.exp is None
    assert any("no plausible numeric exp" in p for p in info.problems)


def test_repr_never_shows_the_cookie_value() -> None:
    h = header(expires_in=3600)
    info = parse_cookies(h, now=NOW)
    value = h.split("=", 1)[1]
    assert value[:40] not in repr(info)
    assert info.header == h


def _parse_safely(text: str) -> CookieInfo | None:
    try:
        return parse_cookies(text, now=NOW)
    except StuckgenError:
        return None


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text_never_raises(text: str) -> None:
    info = _parse_safely(text)
    assert info is None or isinstance(info.problems, tuple)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["", ".0", ".1", ".2", ".x"]), st.text(max_size=60)), max_size=4),
    st.binary(max_size=200),
)
def test_arbitrary_auth_cookie_values_never_raise(parts: list[tuple[str, str]], blob: bytes) -> None:
    pieces = [f"sb-abcd-auth-token{suffix}={value}" for suffix, value in parts]
    pieces.append("sb-abcd-auth-token.3=base64-" + base64.urlsafe_b64encode(blob).decode())
    _parse_safely("; ".join(pieces))
    _parse_safely("\n".join(p.replace("=", "\t", 1) for p in pieces))


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3)))
def test_arbitrary_jwt_payloads_never_raise(payload: object) -> None:
    token = "e30." + base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=") + ".sig"
    value = "base64-" + base64.urlsafe_b64encode(json.dumps({"access_token": token}).encode()).decode()
    _parse_safely(f"sb-abcd-auth-token={value}")
