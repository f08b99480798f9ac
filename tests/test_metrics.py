"""check --metrics-file: OpenMetrics written atomically after every run, whatever its exit code."""

from __future__ import annotations

import os
import stat

import psycopg
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from typer.testing import CliRunner

from stuckgen.cli import app
from stuckgen.metrics import Family, Sample, exposition_lines, write_atomic
from stuckgen.reference.seed import seed

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("DATABASE_URL", "SUPABASE_DB_URL", "STUCKGEN_DATABASE_URL", "INTERNAL_API_SECRET", "GITHUB_ACTIONS",
                "GITHUB_STEP_SUMMARY", "STUCKGEN_BASE_URL", "STUCKGEN_METRICS_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def parse(text: str) -> dict[str, object]:
    """Families by name, parsed by the reference OpenMetrics parser (it rejects malformed exposition)."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams, name: str, **labels: str) -> float:
    for s in fams[name].samples:
        if all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError(f"no sample {name}{labels}")


def assert_well_formed(text: str) -> None:
    lines = text.splitlines()
    assert lines[-1] == "# EOF" and text.endswith("# EOF\n")
    names = {line.split()[2] for line in lines if line.startswith("# TYPE ")}
    helps = {line.split()[2] for line in lines if line.startswith("# HELP ")}
    assert names and names == helps, names ^ helps
    for line in lines:
        if line.startswith("# TYPE ") and line.split()[3] == "counter":
            name = line.split()[2]
            samples = [x for x in lines if x.startswith(name) and not x.startswith("#")]
            assert all(x.split("{")[0].split(" ")[0] == name + "_total" for x in samples), samples


@pytest.fixture
def incident_db(db):
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"completed": 6, "trigger-failed": 2, "stalled": 1})
    return db


def test_metrics_file_is_written_during_an_incident(incident_db, tmp_path):
    os.umask(0o077)  # a strict umask must not hide the metrics from the collector
    try:
        path = tmp_path / "textfile" / "stuckgen.prom"
        path.parent.mkdir()
        r = runner.invoke(app, ["check", "-d", incident_db, "--metrics-file", str(path)])
    finally:
        os.umask(0o022)
    assert r.exit_code == 1, r.output
    text = path.read_text()
    assert_well_formed(text)
    fams = parse(text)
    assert value(fams, "stuckgen_stuck", **{"class": "trigger-failed"}) == 2
    assert value(fams, "stuckgen_stuck", **{"class": "stalled"}) == 1
    assert value(fams, "stuckgen_stuck", **{"class": "never-started"}) == 0
    assert value(fams, "stuckgen_stuck_rows") == 3
    assert value(fams, "stuckgen_trigger_failures", status="401", state="stuck") == 2
    assert value(fams, "stuckgen_oldest_quiet_seconds") > 60
    assert value(fams, "stuckgen_stuck_rate") == pytest.approx(3 / 9)
    assert value(fams, "stuckgen_check_exit_code") == 1
    assert value(fams, "stuckgen_check_failed") == 1
    assert value(fams, "stuckgen_database_up") == 1
    assert fams["stuckgen_check_timestamp_seconds"].unit == "seconds"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(path.parent) == ["stuckgen.prom"]  # no temporary file left behind


def test_metrics_file_when_the_database_is_unreachable(tmp_path):
    path = tmp_path / "stuckgen.prom"
    path.write_text("stale\n")
    r = runner.invoke(app, ["check", "-d", "postgresql://u:pw-metrics-secret@127.0.0.1:1/db",
                            "--connect-timeout", "2s", "--metrics-file", str(path)])
    assert r.exit_code == 3, r.output
    text = path.read_text()
    assert_well_formed(text)
    fams = parse(text)
    assert value(fams, "stuckgen_database_up") == 0
    assert value(fams, "stuckgen_check_exit_code") == 3
    assert "stuckgen_stuck" not in fams  # no number is better than a stale one
    assert "pw-metrics-secret" not in text and "pw-metrics-secret" not in r.output


def test_metrics_file_healthy_run_from_the_environment(db, tmp_path):
    with psycopg.connect(db, autocommit=True) as conn:
        seed(conn, {"completed": 3})
    path = tmp_path / "m.prom"
    r = runner.invoke(app, ["check", "-d", db], env={"STUCKGEN_METRICS_FILE": str(path)})
    assert r.exit_code == 0, r.output
    fams = parse(path.read_text())
    assert value(fams, "stuckgen_stuck_rows") == 0 and value(fams, "stuckgen_check_exit_code") == 0
    assert value(fams, "stuckgen_oldest_quiet_seconds") == 0


def test_metrics_file_with_probe_results_by_finding(db, tmp_path):
    from stuckgen.reference import ReferenceDeployment

    path = tmp_path / "m.prom"
    with ReferenceDeployment(db, "secret-missing", secret="metrics-secret-value-1") as dep:
        r = runner.invoke(app, ["check", "-d", db, "--probe", "--url", dep.url, "--metrics-file", str(path)],
                          env={"INTERNAL_API_SECRET": "metrics-secret-value-1"})
    assert r.exit_code == 1, r.output
    text = path.read_text()
    assert_well_formed(text)
    fams = parse(text)
    assert value(fams, "stuckgen_probe_findings", finding="secret-rejected", target=dep.url) == 1
    assert value(fams, "stuckgen_probe_answers", target=dep.url, mode="secret", status="401") >= 1
    assert "metrics-secret-value-1" not in text


def test_stdout_openmetrics_is_valid_too(incident_db):
    r = runner.invoke(app, ["check", "-d", incident_db, "-f", "openmetrics"])
    assert r.exit_code == 1
    assert_well_formed(r.stdout)
    assert value(parse(r.stdout), "stuckgen_stuck", **{"class": "trigger-failed"}) == 2


def test_unwritable_metrics_directory_does_not_turn_a_red_run_green(incident_db, tmp_path):
    r = runner.invoke(app, ["check", "-d", incident_db, "--metrics-file", str(tmp_path / "missing" / "m.prom")])
    assert r.exit_code == 1
    assert "--metrics-file: cannot write" in r.stderr


def test_unwritable_metrics_directory_is_an_error_on_a_green_run(db, tmp_path):
    r = runner.invoke(app, ["check", "-d", db, "--metrics-file", str(tmp_path / "missing" / "m.prom")])
    assert r.exit_code == 2
    assert "--metrics-file: cannot write" in r.stderr


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "m.prom"
    write_atomic(path, ["old 1", "# EOF"])

    def broken():
        yield "new 1"
        raise RuntimeError("renderer failed half way")

    with pytest.raises(RuntimeError):
        write_atomic(path, broken())
    assert path.read_text() == "old 1\n# EOF\n"
    assert os.listdir(tmp_path) == ["m.prom"]


def test_counter_samples_end_in_total_and_units_match():
    fam = Family(name="stuckgen_things", type="counter", help="Things.", samples=(Sample(value=3),))
    text = "\n".join(exposition_lines([fam])) + "\n"
    assert "stuckgen_things_total 3" in text
    assert parse(text)["stuckgen_things"].type == "counter"
    with pytest.raises(ValueError):
        Family(name="stuckgen_things_total", type="counter", help="x")
    with pytest.raises(ValueError):
        Family(name="stuckgen_age", type="gauge", help="x", unit="seconds")


def test_crontab_example_writes_metrics_with_the_atomic_option():
    from pathlib import Path

    cron = (Path(__file__).parent.parent / "examples" / "crontab").read_text()
    lines = [x for x in cron.splitlines() if x and not x.startswith("#")]
    metrics = [x for x in lines if "textfile" in x]
    assert metrics and all("--metrics-file /var/lib/node_exporter/textfile/stuckgen.prom" in x for x in metrics)
    assert ".tmp" not in cron and "&& mv" not in cron  # the old line never moved the file on exit 1
    assert "and mail cron's output" not in cron  # the output is redirected to a log: nothing is mailed
