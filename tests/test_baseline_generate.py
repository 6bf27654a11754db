"""`gpic-lab generate`: its output passes `gpic-lab eval`; it resumes; GPU sharding does not change the images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from gpic_lab.baseline import generate as gen  # noqa: E402
from gpic_lab.errors import UsageError  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory, sample_dir: Path) -> dict[str, Path]:
    """A tiny run trained 3 steps on the sample corpus, tiny DINOv2 reference stats of it, and its eval prompts."""
    from gpic_lab.baseline.text_encoder import build_tiny_qwen3
    from gpic_lab.baseline.train import TrainSettings, train
    from gpic_lab.evaluation import eval_prompts, refstats
    from gpic_lab.models import dinov2

    root = tmp_path_factory.mktemp("generate")
    shards = [str(sample_dir / "train")]
    enc = build_tiny_qwen3(root / "qwen3-tiny")
    train(TrainSettings(config="tiny", shards=shards, out=str(root / "run"), steps=3, global_batch=4, workers=0,
                        text_encoder=str(enc), device="cpu", threads=1, log_every=1, ckpt_every=100))
    dino = dinov2.build_tiny_dinov2(root / "dinov2-tiny")
    ref = refstats.build_refstats(shards, dinov2.load_dinov2(dino, device="cpu"), root / "ref", split="sample")
    eval_prompts.write_eval_prompts(shards, ref["path"], root / "prompts.jsonl")
    return {"root": root, "run": root / "run", "dino": dino, "ref": Path(ref["path"]), "prompts": root / "prompts.jsonl"}


def _generate(t: dict[str, Path], out: Path, *more: str) -> dict:
    from gpic_lab.commands.cli import main

    code = main(["generate", "--ckpt", str(t["run"]), "--prompts", str(t["prompts"]), "--cfg", "1.0,4.0", "--steps",
                 "4", "--out", str(out), "--batch", "4", "--device", "cpu", "--threads", "1", *more])
    assert code == 0
    return json.loads(sorted(out.glob("generate_*.json"))[-1].read_text())


def test_generate_output_passes_eval_end_to_end(trained: dict[str, Path], capsys) -> None:
    from gpic_lab.commands.cli import main

    out = trained["root"] / "samples"
    _generate(trained, out)
    keys = [json.loads(line) for line in trained["prompts"].read_text().splitlines()]
    for sub in ("cfg_1", "cfg_4"):
        names = sorted(p.name for p in (out / sub).iterdir())
        assert names == sorted(f"{r['caption_type']}_{r['key']}.png" for r in keys)
        assert all(gen.valid_png(out / sub / n) for n in names)
        capsys.readouterr()
        assert main(["eval", str(out / sub), "--ref", str(trained["ref"]), "--model", str(trained["dino"]),
                     "-o", str(out / f"{sub}.json"), "--device", "cpu"]) == 0
        result = json.loads((out / f"{sub}.json").read_text())
        assert result["n_samples"] == len(keys) and result["skipped"] == {} and result["fd"] >= 0
        assert 0 <= result["precision"] <= 1 and 0 <= result["coverage"] <= 1


def test_generate_resumes_and_rewrites_only_what_is_missing_or_broken(trained: dict[str, Path], capsys) -> None:
    out = trained["root"] / "resume"
    _generate(trained, out)
    files = sorted((out / "cfg_4").iterdir())
    original = {p.name: p.read_bytes() for p in files}
    files[0].unlink()
    files[1].write_bytes(b"not a png")
    capsys.readouterr()
    _generate(trained, out)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["written"] == 2 and summary["skipped_existing"] == 2 * len(original) - 2
    assert {p.name: p.read_bytes() for p in (out / "cfg_4").iterdir() if p.suffix == ".png"} == original
    _generate(trained, out)
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["written"] == 0


def test_sharding_over_ranks_gives_the_same_images(trained: dict[str, Path]) -> None:
    single, split = trained["root"] / "single", trained["root"] / "split"
    _generate(trained, single)
    ranges = [_generate(trained, split, "--rank", str(r), "--world-size", "2")["range"] for r in (0, 1)]
    assert ranges[0][0] == 0 and ranges[0][1] == ranges[1][0] and ranges[1][1] == 9
    for sub in ("cfg_1", "cfg_4"):
        a = {p.name: p.read_bytes() for p in (single / sub).iterdir()}
        b = {p.name: p.read_bytes() for p in (split / sub).iterdir()}
        assert a == b and len(a) == 9
    assert len({p.read_bytes() for p in (single / "cfg_1").iterdir()}) == 9  # distinct prompts, distinct images


def test_prompt_ranges_and_option_checks(tmp_path: Path) -> None:
    covered = [i for r in range(3) for i in range(*gen.prompt_range(10, rank=r, world=3))]
    assert covered == list(range(10))
    assert gen.prompt_range(10, "4:") == (4, 10) and gen.prompt_range(10, "2:99") == (2, 10)
    assert gen.parse_cfgs("1.75,4.0,6.25") == [1.75, 4.0, 6.25] and gen.cfg_dirname(4.0) == "cfg_4"
    for bad in ("", "1,1", "-1", "a"):
        with pytest.raises(UsageError):
            gen.parse_cfgs(bad)
    with pytest.raises(UsageError):
        gen.prompt_range(10, "5:2")
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"key": "k", "caption": "c", "caption_type": "short"}\n{"key": "k", "caption": "d", '
                   '"caption_type": "short"}\n')
    with pytest.raises(UsageError, match="duplicate key"):
        gen.read_prompts(bad)
