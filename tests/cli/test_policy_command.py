"""`herald policy validate|test` on files, as a compliance officer runs them before publishing."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from herald_cli.main import app

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "acme" / "policy"
runner = CliRunner()


def test_the_shipped_policy_validates_and_passes_its_own_tests() -> None:
    validated = runner.invoke(app, ["policy", "validate", str(SAMPLES / "policy.yaml")])
    assert validated.exit_code == 0, validated.output
    assert "ok acme v1-" in validated.output and "12 rule(s)" in validated.output
    tested = runner.invoke(app, ["policy", "test", str(SAMPLES / "policy.yaml"), str(SAMPLES / "tests.yaml")])
    assert tested.exit_code == 0, tested.output
    assert "0 failed" in tested.output


def test_a_broken_policy_is_refused_with_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "policy.yaml"
    broken.write_text("tenant: acme\nversion: 2\nrules:\n  - id: escalation.unsure\n    when: action.confidense < 1\n")
    result = runner.invoke(app, ["policy", "validate", str(broken)])
    assert result.exit_code == 1
    assert f"{broken}:5: rules.0.when: CEL: no fact named 'confidense'" in result.output


def test_a_failing_case_fails_the_run(tmp_path: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text("cases:\n  - {name: a VIP slips through, action: {contact: {vip: true}}, expect: approve}\n")
    result = runner.invoke(app, ["policy", "test", str(SAMPLES / "policy.yaml"), str(cases)])
    assert result.exit_code == 1
    assert "expected approve, got escalate" in result.output and "1 failed" in result.output


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["policy", "validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1 and "No such file" in result.output
