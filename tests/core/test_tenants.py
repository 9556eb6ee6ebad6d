"""Tenant files: a new one is seen at once; a broken one is left out without taking the others down."""

from __future__ import annotations

from pathlib import Path

import yaml

from herald_core.tenants import TenantDirectory


def _write(directory: Path, tenant_id: str) -> None:
    (directory / f"{tenant_id}.yaml").write_text(
        yaml.safe_dump(
            {
                "tenant_id": tenant_id,
                "name": tenant_id.title(),
                "unsubscribe_url": "https://x.example/u",
                "sender": {"name": "Maya", "address": "maya@x.example"},
            }
        )
    )


def test_a_tenant_added_a_moment_ago_is_found(tmp_path: Path) -> None:
    tenants = TenantDirectory(tmp_path, refresh_seconds=3600, miss_rescan_seconds=0)
    _write(tmp_path, "first")
    assert tenants.get("first") is not None
    _write(tmp_path, "second")
    assert tenants.get("second") is not None


def test_a_broken_file_leaves_the_others_working(tmp_path: Path) -> None:
    _write(tmp_path, "good")
    (tmp_path / "broken.yaml").write_text("tenant_id: [unclosed")
    (tmp_path / "invalid.yaml").write_text(yaml.safe_dump({"tenant_id": "Not Valid!"}))
    tenants = TenantDirectory(tmp_path)
    assert tenants.get("good") is not None
    assert [t.tenant_id for t in tenants.all()] == ["good"]
