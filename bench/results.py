"""Where every bench writes: bench/results/<name>.json and .png, plus a stable "latest" copy of each."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

from herald_stack.config import REPO_ROOT

RESULTS = REPO_ROOT / "bench" / "results"


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def save(name: str, latest: str, result: dict[str, Any], plot: Callable[[dict[str, Any], Path], None]) -> None:
    """Write `result` as JSON and its plot as PNG, under `name` and under `latest`."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    for stem in (name, latest):
        (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2))
        plot(result, RESULTS / f"{stem}.png")
    print(f"results: {RESULTS / f'{name}.json'} and .png")
