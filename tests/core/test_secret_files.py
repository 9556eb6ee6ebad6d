"""Secret files: read when needed, kept until they change, so a rotated secret counts at the next read."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from herald_core.secret_files import SETTLING_NS, SecretFiles

AN_HOUR_AGO_NS = time.time_ns() - 3_600_000_000_000


def test_the_text_is_read_without_the_newline_secret_tooling_leaves(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("  s3cret-token\n")
    assert SecretFiles().read(path) == "s3cret-token"


def test_a_settled_file_is_read_once_until_its_stamp_changes(tmp_path: Path) -> None:
    """Proved by a change the stamp cannot show (same size, inode and time put back): the kept text is
    answered. Any change the stamp shows is read."""
    path = tmp_path / "token"
    path.write_text("token-one")
    os.utime(path, ns=(AN_HOUR_AGO_NS, AN_HOUR_AGO_NS))
    files = SecretFiles()
    assert files.read(path) == "token-one"

    path.write_text("token-two")
    os.utime(path, ns=(AN_HOUR_AGO_NS, AN_HOUR_AGO_NS))
    assert files.read(path) == "token-one"

    os.utime(path, ns=(AN_HOUR_AGO_NS + 1, AN_HOUR_AGO_NS + 1))
    assert files.read(path) == "token-two"
    path.write_text("token-three, longer")  # now, and of another size
    assert files.read(path) == "token-three, longer"


def test_a_file_changed_a_moment_ago_is_read_again_even_if_its_stamp_looks_the_same(tmp_path: Path) -> None:
    """Two writes within the file system's time granularity can leave the same stamp: a file changed less than
    `SETTLING_NS` before it was read is not trusted to be unchanged."""
    path = tmp_path / "token"
    path.write_text("token-one")
    stamp = path.stat().st_mtime_ns
    assert time.time_ns() - stamp < SETTLING_NS
    files = SecretFiles()
    assert files.read(path) == "token-one"
    path.write_text("token-two")
    os.utime(path, ns=(stamp, stamp))
    assert files.read(path) == "token-two"


def test_a_file_replaced_by_a_rename_or_a_secret_volume_swap_is_read_again(tmp_path: Path) -> None:
    """A Kubernetes Secret volume names each key by a link into `..data`, a link it swaps on an update."""
    for name, text in (("v1", "token-one"), ("v2", "token-two")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "token").write_text(text)
        os.utime(tmp_path / name / "token", ns=(AN_HOUR_AGO_NS, AN_HOUR_AGO_NS))  # the same time, both
    (tmp_path / "..data").symlink_to("v1")
    (tmp_path / "token").symlink_to("..data/token")
    files = SecretFiles()
    assert files.read(tmp_path / "token") == "token-one"
    (tmp_path / "..data_tmp").symlink_to("v2")
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert files.read(tmp_path / "token") == "token-two"


def test_a_missing_file_is_an_error_and_is_read_afresh_when_it_returns(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("token-one")
    os.utime(path, ns=(AN_HOUR_AGO_NS, AN_HOUR_AGO_NS))
    files = SecretFiles()
    assert files.read(path) == "token-one"
    path.unlink()
    with pytest.raises(FileNotFoundError):
        files.read(path)
    path.write_text("token-two")
    os.utime(path, ns=(AN_HOUR_AGO_NS, AN_HOUR_AGO_NS))
    assert files.read(path) == "token-two"
