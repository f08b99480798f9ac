"""The files under examples/ stay loadable and in step with the code."""

from pathlib import Path

from stuckgen.settings import OPTIONS, load_settings

EX = Path(__file__).parent.parent / "examples"


def test_env_example_names_every_option_and_loads(tmp_path):
    text = (EX / "env.example").read_text()
    for opt in OPTIONS.values():
        if opt.name == "operator":
            continue
        assert any(f"{var}=" in text for var in opt.env), f"{opt.name} missing from env.example"
    s = load_settings({}, environ={}, cwd=tmp_path, env_file=str(EX / "env.example"))
    assert s.threshold == 120 and s.base_url[0] == "https://app.example.com"


def test_example_toml_loads(tmp_path):
    s = load_settings({}, environ={}, cwd=tmp_path, config_file=str(EX / "stuckgen.toml"))
    assert s.threshold == 300


def test_example_schema_is_the_reference_schema():
    ref = (Path(__file__).parent.parent / "stuckgen" / "reference" / "schema.sql").read_text()
    assert (EX / "schema.sql").read_text().split("\n", 1)[1] == ref


def test_workflow_runs_check_on_a_schedule():
    wf = (EX / "stuckgen-check.yml").read_text()
    assert 'cron: "*/10 * * * *"' in wf and "stuckgen check" in wf and "secrets.DATABASE_URL" in wf
