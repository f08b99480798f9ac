"""Every setting is documented by its stuckgen.toml key, flag and environment variables; bad keys explain themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.main import get_command

from stuckgen.cli import app
from stuckgen.errors import ConfigError
from stuckgen.settings import OPTIONS, load_settings

README = (Path(__file__).parent.parent / "README.md").read_text()
CONFIG = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]


def _flags() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for cmd in get_command(app).commands.values():  # type: ignore[attr-defined]
        for p in cmd.params:
            if p.name in OPTIONS:
                out.setdefault(p.name, set()).update(o for o in p.opts if o.startswith("--"))
    return out


FLAGS = _flags()


@pytest.mark.parametrize("name", list(OPTIONS))
def test_every_setting_has_a_row_with_its_key_flags_environment_and_meaning(name):
    row = next((line for line in CONFIG.splitlines() if line.startswith(f"| `{name}` |")), None)
    assert row is not None, f"README's configuration table has no row for {name}"
    for var in OPTIONS[name].env:
        assert f"`{var}`" in row, f"{name}: {var} missing from its README row"
    for flag in FLAGS.get(name, ()):
        assert f"`{flag}`" in row, f"{name}: {flag} missing from its README row"
    assert OPTIONS[name].help and OPTIONS[name].help in row


def test_an_unknown_key_names_the_closest_and_lists_every_valid_one(tmp_path):
    (tmp_path / "stuckgen.toml").write_text('inflight = ["starting"]\n')
    with pytest.raises(ConfigError) as e:
        load_settings({}, environ={}, cwd=tmp_path)
    msg = e.value.message
    assert "unknown setting 'inflight'" in msg and "did you mean 'inflight_statuses'" in msg
    assert all(k in msg for k in OPTIONS) and "[mapping]" in msg


def test_the_removed_completed_status_says_why(tmp_path):
    (tmp_path / "stuckgen.toml").write_text('completed_status = "done"\n')
    with pytest.raises(ConfigError, match="removed: it was never used"):
        load_settings({}, environ={}, cwd=tmp_path)


@pytest.mark.parametrize("value, ok", [("Asia/Kathmandu", True), ("UTC", True), ("utc", True),
                                       ("+05:45", False), ("Mars/Olympus", False)])
def test_naive_timezone_takes_zone_names_only(tmp_path, value, ok):
    if ok:
        assert load_settings({}, environ={"STUCKGEN_NAIVE_TIMEZONE": value}, cwd=tmp_path).naive_timezone in (value, "UTC")
    else:
        with pytest.raises(ConfigError, match="naive_timezone"):
            load_settings({}, environ={"STUCKGEN_NAIVE_TIMEZONE": value}, cwd=tmp_path)
