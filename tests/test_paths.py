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


def _outside(monkeypatch: pytest.MonkeyPatch, cwd: Path) -> None:
    """Work in `cwd`, outside any checkout, as an installed package would (no env roots, no package checkout)."""
    for var in ("GPIC_LAB_ROOT", "GPIC_LAB_STATE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(paths, "_package_checkout", lambda: None)
    cwd.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(cwd)


def test_state_outside_a_checkout_does_not_follow_the_working_directory(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    _outside(monkeypatch, tmp_path / "a")
    first = paths.state_root()
    _outside(monkeypatch, tmp_path / "b")
    assert paths.state_root() == first == tmp_path / "xdg" / "gpic-lab"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert paths.state_root() == tmp_path / "home" / ".local" / "state" / "gpic-lab"


def test_state_of_an_editable_install_is_its_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path(__file__).resolve().parents[1]
    for var in ("GPIC_LAB_ROOT", "GPIC_LAB_STATE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    assert paths.state_root() == root / ".state"


@pytest.mark.slow
def test_a_caption_run_resumes_from_another_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       tiny_shards) -> None:
    import json

    from crafted import cli

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    shards = tiny_shards(1, 2)
    args = ["caption", str(shards[0]), "--out", str(tmp_path / "cap"), "--model", "tiny", "--max-new-tokens", "4",
            "--no-progress", "--device", "cpu"]
    _outside(monkeypatch, tmp_path / "one")
    assert cli(args)[0] == 0
    _outside(monkeypatch, tmp_path / "two")
    rc, out, err = cli(args)
    assert rc == 0, err
    assert json.loads(out.splitlines()[-1])["skipped"] == 1
    assert not (tmp_path / "one" / ".state").exists() and not (tmp_path / "two" / ".state").exists()


def test_outputs_honour_the_umask(tmp_path: Path) -> None:
    import os

    from gpic_lab.fsio import write_bytes_atomic, write_json_atomic, write_parquet_atomic

    old = os.umask(0o022)
    try:
        written = [write_bytes_atomic(tmp_path / "a.bin", b"x"), write_json_atomic(tmp_path / "b.json", {}),
                   write_parquet_atomic(tmp_path / "c.parquet", __import__("pandas").DataFrame({"a": [1]}))]
        os.umask(0o077)
        private = write_bytes_atomic(tmp_path / "d.bin", b"x")
    finally:
        os.umask(old)
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {oct(0o644)}
    assert private.stat().st_mode & 0o777 == 0o600
