"""The fuzz run's summary: one per session, written as JSON where `HERALD_FUZZ_SUMMARY` says (`make fuzz`:
bench/results/fuzz.json) and printed at the end of the run."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fuzzing import HTTP_CASES, TOPIC_RECORDS, Summary

# hypothesis keeps no example database here (`database=None`), but caches what it learns of the source in its
# home directory, by default `.hypothesis/` in the working tree: outside the repository instead
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(Path(tempfile.gettempdir()) / "herald-hypothesis"))

_run: dict[str, Summary] = {}


@pytest.fixture(scope="session")
def summary() -> Iterator[Summary]:
    found = _run.setdefault("summary", Summary())
    yield found


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    target = os.environ.get("HERALD_FUZZ_SUMMARY")
    found = _run.get("summary")
    if not target or found is None:
        return
    report = {
        "budget": {"http_cases": HTTP_CASES, "topic_records": TOPIC_RECORDS},
        "duration_seconds": round(sum(_durations.values()), 1),
        "durations_per_test": {name: round(seconds, 1) for name, seconds in _durations.items()},
        **found.as_json(),
    }
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    terminalreporter.section("fuzz summary")
    terminalreporter.write_line(json.dumps(report, indent=2))
    terminalreporter.write_line(f"written to {path}")


_durations: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and "tests/fuzz/" in report.nodeid.replace("\\", "/"):
        _durations[report.nodeid.rsplit("::", 1)[-1]] = report.duration
