"""Every registered stage declares its parameters; `-p` values are checked by type and range before any shard is
read (exit 2, one line, nothing written), and `gpic-lab stage NAME --list-params` prints them."""

from __future__ import annotations

from pathlib import Path

import crafted
import pytest

from gpic_lab.engine import params as stage_params
from gpic_lab.engine.stages import REGISTRY, resolve, run_stage
from gpic_lab.errors import UsageError

cli = crafted.cli


@pytest.mark.parametrize("stage", sorted(REGISTRY))
def test_every_stage_declares_its_parameters_and_defaults_pass(stage: str) -> None:
    specs = stage_params.specs_of(resolve(stage))
    assert specs, stage
    for spec in specs:
        assert spec.help and spec.kind in stage_params.KINDS
        stage_params.check(stage, specs, {spec.name: spec.default})


@pytest.mark.parametrize("stage", sorted(REGISTRY))
def test_list_params_prints_name_type_default_and_range(stage: str) -> None:
    rc, out, err = cli(["stage", stage, "--list-params"])
    assert rc == 0, err
    lines = out.strip().splitlines()
    specs = stage_params.specs_of(resolve(stage))
    assert lines[0].split()[:4] == ["name", "type", "default", "range"] and len(lines) == len(specs) + 1
    for spec, line in zip(specs, lines[1:], strict=True):
        assert line.split()[0] == spec.name and spec.kind in line.split()[1] and spec.range_text() in line


BAD = [
    ("quality", "max_aspect=-1"), ("quality", "max_aspect=NaN"), ("quality", "max_aspect=Infinity"),
    ("quality", "max_aspect=1e999"), ("quality", "reduced=maybe"), ("quality", "min_longest_side=16.5"),
    ("quality", "min_longest_side=" + "9" * 5000), ("quality", "dark_level=300"), ("quality", "exposure_share=0"),
    ("quality", "nosuch=1"), ("quality", "max_aspect=[[[[[[1]]]]]]"), ("quality", "max_aspect=" + "[" * 100_000),
    ("schema", "require_caption=no"), ("schema", "require_caption=1"), ("license", "check_url=yes"),
    ("license", "strict=true"), ("safety-cpu", "threshold=1.5"), ("safety-cpu", "batch_size=0"),
    ("safety-cpu", "threads=-2"), ("vlm-judge", "checks=quality,bogus"), ("vlm-judge", "unparseable=maybe"),
    ("vlm-judge", "one_pass=no"), ("vlm-judge", "batch_size=2.5"), ("caption-qc", 'words={"tag":[5,1]}'),
    ("caption-qc", 'sentences={"short":[1,"x"]}'), ("caption-qc", 'sentences={"huge":[1,2]}'),
    ("caption-qc", "min_distinct_ratio=-0.1"), ("caption-qc", "duplicates=some"), ("caption-qc", "captions=7"),
]


@pytest.mark.parametrize(("stage", "param"), BAD, ids=[f"{s}-{p[:28]}" for s, p in BAD])
def test_bad_parameter_values_are_one_line_usage_errors(tmp_path: Path, sample_dir: Path, stage: str,
                                                         param: str) -> None:
    out = tmp_path / "out"
    rc, _, err = cli(["stage", stage, str(sample_dir / "val"), "--out", str(out), "-p", param, "--workers", "1",
                      "--no-progress"])
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpic-lab stage: error: ") and len(lines[0]) < 400
    assert param.split("=")[0] in lines[0] and not out.exists()


def test_library_callers_get_the_same_checks(tmp_path: Path, sample_dir: Path) -> None:
    with pytest.raises(UsageError, match="max_aspect"):
        run_stage("quality", [sample_dir / "val"], tmp_path / "q", params={"max_aspect": float("nan")},
                  progress=False)
    with pytest.raises(UsageError, match="require_caption"):
        run_stage("schema", [sample_dir / "val"], tmp_path / "s", params={"require_caption": "no"}, progress=False)


@pytest.mark.parametrize(("stage", "param"), [("schema", "require_caption=false"), ("quality", "reduced=false"),
                                              ("quality", "max_aspect=4"), ("license", "check_url=true")])
def test_good_values_still_run(tmp_path: Path, sample_dir: Path, stage: str, param: str) -> None:
    rc, _, err = cli(["stage", stage, str(sample_dir / "val"), "--out", str(tmp_path / "o"), "-p", param,
                      "--workers", "1", "--no-progress"])
    assert rc == 0, err


def test_stage_without_paths_or_out_is_a_usage_error(tmp_path: Path, sample_dir: Path) -> None:
    for argv in (["stage", "license"], ["stage", "license", str(sample_dir / "val")]):
        rc, _, err = cli(argv)
        assert rc == 2 and len(err.strip().splitlines()) == 1
