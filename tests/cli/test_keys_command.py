"""`herald keys rotate`: a new current key, the old one retired after the grace period, a bad grace refused."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from herald_core.signing import generate_keypair, load_verifier


def _herald(keys: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = Path(sys.executable).with_name("herald")
    env = {**os.environ, "HERALD_KEYS_DIR": str(keys), "HERALD_GUARD_SIGNING_KEY_ID": "guard-a", "COLUMNS": "200"}
    return subprocess.run([str(binary), *args], env=env, capture_output=True, text=True, timeout=60)


def test_rotate_makes_a_new_key_current_and_retires_the_old_one_after_the_grace(tmp_path: Path) -> None:
    generate_keypair(tmp_path, "guard-a")
    started = datetime.now(UTC)
    rotated = _herald(tmp_path, "keys", "rotate", "--grace", "15m")
    assert rotated.returncode == 0, rotated.stderr
    new = (tmp_path / "current").read_text().strip()
    assert f"signing with {new}; guard-a retired after 0:15:00" in rotated.stdout
    retired = load_verifier(tmp_path).retired
    assert set(retired) == {"guard-a"}
    assert started + timedelta(minutes=15) <= retired["guard-a"] <= datetime.now(UTC) + timedelta(minutes=15)
    assert (tmp_path / f"{new}.pem").exists() and (tmp_path / f"{new}.pub.pem").exists()

    refused = _herald(tmp_path, "keys", "rotate", "--grace", "soon")
    assert refused.returncode != 0 and "not a duration" in refused.stderr
    assert (tmp_path / "current").read_text().strip() == new
