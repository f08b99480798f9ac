from pathlib import Path

import pytest

from stuckgen.errors import ConfigError
from stuckgen.settings import load_settings


def test_precedence_flag_over_env_over_dotenv_over_toml_over_default(tmp_path: Path):
    (tmp_path / ".env").write_text("STUCKGEN_THRESHOLD=3m\nSTUCKGEN_TABLE=from_dotenv\nSTUCKGEN_ROUTE=/dotenv\n")
    (tmp_path / "stuckgen.toml").write_text('threshold = "4m"\ntable = "from_toml"\nroute = "/toml"\nsince = "6h"\n')
    env = {"STUCKGEN_THRESHOLD": "5m", "STUCKGEN_TABLE": "from_env"}
    s = load_settings({"threshold": "6m"}, environ=env, cwd=tmp_path)
    assert s.threshold == 360 and s.sources["threshold"] == "flag --threshold"
    assert s.table == "from_env" and s.sources["table"] == "environment STUCKGEN_TABLE"
    assert s.route == "/dotenv" and s.sources["route"] == ".env STUCKGEN_ROUTE"
    assert s.since == 6 * 3600 and "stuckgen.toml" in s.sources["since"]
    assert s.statement_timeout == 30 and s.sources["statement_timeout"] == "default"


def test_users_existing_variable_names_are_accepted(tmp_path: Path):
    s = load_settings({}, environ={"SUPABASE_DB_URL": "postgresql://u@h/db", "INTERNAL_API_SECRET": "abc\n"}, cwd=tmp_path)
    assert s.database_url == "postgresql://u@h/db"
    assert s.sources["database_url"] == "environment SUPABASE_DB_URL"
    assert s.internal_secret == "abc\n", "a secret is kept byte for byte so whitespace can be diagnosed"
    s2 = load_settings({}, environ={"DATABASE_URL": "postgresql://a@h/x", "SUPABASE_DB_URL": "postgresql://b@h/y"}, cwd=tmp_path)
    assert s2.database_url == "postgresql://a@h/x"


def test_env_file_flag_reads_another_file_and_missing_file_is_an_error(tmp_path: Path):
    other = tmp_path / "prod.env"
    other.write_text("DATABASE_URL=postgresql://x@y/z\n")
    s = load_settings({}, environ={}, cwd=tmp_path, env_file=str(other))
    assert s.database_url == "postgresql://x@y/z" and s.sources["database_url"] == ".env DATABASE_URL"
    with pytest.raises(ConfigError, match="--env-file"):
        load_settings({}, environ={}, cwd=tmp_path, env_file=str(tmp_path / "nope.env"))


def test_dotenv_syntax_error_names_the_line(tmp_path: Path):
    (tmp_path / ".env").write_text("GOOD=1\nthis is not valid\n")
    with pytest.raises(ConfigError, match=r"\.env:2"):
        load_settings({}, environ={}, cwd=tmp_path)


def test_broken_toml_is_one_clear_error(tmp_path: Path):
    (tmp_path / "stuckgen.toml").write_text("threshold = \n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings({}, environ={}, cwd=tmp_path)


def test_unknown_toml_setting_is_rejected(tmp_path: Path):
    (tmp_path / "stuckgen.toml").write_text('threshhold = "2m"\n')
    with pytest.raises(ConfigError, match="unknown setting 'threshhold'"):
        load_settings({}, environ={}, cwd=tmp_path)


def test_pyproject_tool_section_is_read(tmp_path: Path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname="app"\n[tool.stuckgen]\ntable = "jobs"\n[tool.stuckgen.mapping]\nheartbeat = "meta.hb"\n')
    s = load_settings({}, environ={}, cwd=tmp_path)
    assert s.table == "jobs"
    assert s.mapping_overrides == {"heartbeat": "meta.hb"}


def test_invalid_value_names_option_and_source(tmp_path: Path):
    with pytest.raises(ConfigError) as exc:
        load_settings({}, environ={"STUCKGEN_THRESHOLD": "soon"}, cwd=tmp_path)
    assert "--threshold" in exc.value.message and "STUCKGEN_THRESHOLD" in exc.value.message


def test_url_without_scheme_is_rejected(tmp_path: Path):
    with pytest.raises(ConfigError, match="no scheme"):
        load_settings({"base_url": "myapp.vercel.app"}, environ={}, cwd=tmp_path)


def test_map_flags_override_env_and_toml(tmp_path: Path):
    (tmp_path / "stuckgen.toml").write_text('[mapping]\nheartbeat = "a.b"\nstep_log = "none"\n')
    s = load_settings({}, environ={"STUCKGEN_MAP": "heartbeat=c.d"}, cwd=tmp_path, map_flags=("heartbeat=e",))
    assert s.mapping_overrides["heartbeat"] == "e" and s.mapping_sources["heartbeat"] == "flag --map"
    assert s.mapping_overrides["step_log"] == "none"
    with pytest.raises(ConfigError, match="unknown field"):
        load_settings({}, environ={}, cwd=tmp_path, map_flags=("hearbeat=x",))


def test_urls_with_credentials_are_refused_and_duplicates_probed_once(tmp_path: Path):
    with pytest.raises(ConfigError, match="user:password@"):
        load_settings({"base_url": "https://bob:hunter2@app.example.com"}, environ={}, cwd=tmp_path)
    s = load_settings({"base_url": "https://a.example.com/,https://a.example.com,https://b.example.com"},
                      environ={}, cwd=tmp_path)
    assert s.base_url == ("https://a.example.com", "https://b.example.com")


def test_a_flag_beats_the_environment_also_across_the_cookie_and_the_cookie_file(tmp_path: Path):
    env = {"STUCKGEN_COOKIE": "sb-x-auth-token=from-env"}
    s = load_settings({"cookie_file": "/nonexistent/cookies.txt"}, environ=env, cwd=tmp_path)
    assert s.cookie is None and s.cookie_file == "/nonexistent/cookies.txt"
    assert s.sources["cookie"].startswith("not used: flag --cookie-file wins over environment STUCKGEN_COOKIE")
    s = load_settings({"cookie": "a=b"}, environ={"STUCKGEN_COOKIE_FILE": "/x"}, cwd=tmp_path)
    assert s.cookie == "a=b" and s.cookie_file is None
    with pytest.raises(ConfigError, match="both given"):
        load_settings({"cookie": "a=b", "cookie_file": "/x"}, environ={}, cwd=tmp_path)
    # Equal strength: the header wins, as documented.
    s = load_settings({}, environ={"STUCKGEN_COOKIE": "a=b", "STUCKGEN_COOKIE_FILE": "/x"}, cwd=tmp_path)
    assert s.cookie == "a=b" and s.cookie_file is None


def test_probe_auth_cookie_file_flag_is_not_ignored_when_stuckgen_cookie_is_set(tmp_path: Path, monkeypatch):
    from typer.testing import CliRunner

    from stuckgen.cli import app

    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["probe-auth", "--url", "http://127.0.0.1:1", "--cookie-file", "/nonexistent/c.txt"],
                           env={"STUCKGEN_COOKIE": "sb-x-auth-token=abc"})
    assert r.exit_code == 2, r.output  # the flag's file is read (and is missing), not the environment's cookie
    assert "/nonexistent/c.txt" in r.stderr


def test_sources_and_messages_name_flags_that_exist(tmp_path: Path, monkeypatch):
    import json

    import typer.main
    from typer.testing import CliRunner

    from stuckgen.cli import app

    monkeypatch.chdir(tmp_path)
    for k in ("INTERNAL_API_SECRET", "STUCKGEN_BASE_URL", "DATABASE_URL", "STUCKGEN_DATABASE_URL"):
        monkeypatch.delenv(k, raising=False)
    r = CliRunner().invoke(app, ["doctor", "--url", "http://127.0.0.1:1", "--secret", "abcdefgh12345678",
                                 "--no-probe", "-f", "json"])
    facts = {f["name"]: f["source"] for f in json.loads(r.stdout)["config"]}
    assert facts["base_url"] == "flag --url" and facts["internal_secret"] == "flag --secret", facts
    # --secret is one story: visible in the help of every command that sends the secret.
    cmd = typer.main.get_command(app)
    for name in ("probe-auth", "doctor", "check", "watch", "retrigger"):
        opts = {o: p for p in cmd.commands[name].params for o in p.opts}
        assert "--secret" in opts and not opts["--secret"].hidden, name
        assert "never a flag" not in CliRunner().invoke(app, [name, "--help"]).stdout
