"""Path parameters: relative ones under the data root, absolute ones and URLs as given."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpic_lab import paths


def test_resolve_data_relative_absolute_and_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPIC_LAB_DATA", str(tmp_path))
    assert paths.resolve_data("sample/train") == tmp_path / "sample" / "train"
    assert paths.resolve_data(tmp_path / "x.tar") == tmp_path / "x.tar"
    for url in ("s3://bucket/gpic/train", "https://huggingface.co/datasets/x/resolve/main/a.tar"):
        assert paths.resolve_data(url) == url  # a Path would fold '//' and put it under the data root


def test_env_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPIC_LAB_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("GPIC_LAB_STATE", str(tmp_path / "s"))
    assert paths.sample_dir() == tmp_path / "d" / "sample"
    assert paths.interim_dir("explore") == tmp_path / "d" / "interim" / "explore"
    assert paths.state_root() == tmp_path / "s"
