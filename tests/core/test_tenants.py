"""Tenant files: a new one is seen at once; a broken one is left out without taking the others down."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from herald_core.tenants import TenantConfig, TenantDirectory
from herald_stack.config import REPO_ROOT


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


def test_a_first_touch_campaign_is_read_and_a_bad_one_refused() -> None:
    sample = TenantConfig.model_validate(yaml.safe_load((REPO_ROOT / "samples" / "acme" / "tenant.yaml").read_text()))
    assert sample.first_touch is not None and sample.first_touch.campaign_id == "first-touch"
    assert list(sample.first_touch.variants) == ["proof", "question"]
    base = sample.model_dump(exclude={"first_touch"})
    assert TenantConfig.model_validate(base).first_touch is None  # optional: first emails then belong to no campaign
    for bad in (
        {"campaign_id": "first touch"},  # not a campaign id the contracts accept
        {"campaign_id": "c", "variants": {"-proof": "a leading dash"}},  # nor a variant name
        {"campaign_id": "c", "variants": {"proof": "two\nlines"}},  # an angle is one line
        {"campaign_id": "c", "variants": {f"v{n}": "angle" for n in range(11)}},  # at most ten
    ):
        with pytest.raises(ValidationError):
            TenantConfig.model_validate({**base, "first_touch": bad})
