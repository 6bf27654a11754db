"""`.npz` files people download are read without ever unpickling: an object array (pickled Python objects) is a
one-line usage error (exit 2) in `fd`, `eval --ref`, `eval-prompts --ref` and FiftyOne embeddings, and the code
a crafted pickle carries never runs. Members of the wrong kind (strings where numbers belong) are the same."""

from __future__ import annotations

import ast
from pathlib import Path

import crafted
import numpy as np
import pytest

from gpic_lab.errors import UsageError

cli = crafted.cli


def _stats(path: Path, **over: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(20, 4))
    arrays = {"dino_mu": emb.mean(0), "dino_sigma": np.cov(emb, rowvar=False),
              "key": np.array([f"{i:064x}" for i in range(20)]), "tar_idx": np.arange(20) // 5, **over}
    np.savez(path, **arrays)
    return path


def _pickled(tmp_path: Path, member: str) -> tuple[Path, Path]:
    marker = tmp_path / "PWNED"
    good = {k: v for k, v in {"dino_mu": np.zeros(4), "dino_sigma": np.eye(4)}.items() if k != member}
    return crafted.pickled_npz(tmp_path / "evil.npz", member, marker, **good), marker


@pytest.mark.parametrize("member", ["key", "dino_mu", "tar_idx", "n"])
def test_fd_never_unpickles(tmp_path: Path, member: str) -> None:
    evil, marker = _pickled(tmp_path, member)
    good = _stats(tmp_path / "good.npz")
    rc, out, err = cli(["fd", str(evil), str(good)])
    assert rc == 2 and not marker.exists() and out == ""
    line = err.strip()
    assert "\n" not in line and "object array" in line and f"'{member}'" in line and "Traceback" not in err


def test_eval_ref_and_eval_prompts_never_unpickle(tmp_path: Path, tiny_shards) -> None:
    evil, marker = _pickled(tmp_path, "key")
    (tmp_path / "samples").mkdir()
    rc, _, err = cli(["eval", str(tmp_path / "samples"), "--ref", str(evil), "-o", str(tmp_path / "r.json")])
    assert rc == 2 and "object array" in err and len(err.strip().splitlines()) == 1
    shards = tiny_shards(1, 2)
    rc, _, err = cli(["eval-prompts", str(shards[0]), "--ref", str(evil), "-o", str(tmp_path / "p.jsonl")])
    assert rc == 2 and "object array" in err and len(err.strip().splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "p.jsonl").exists()


def test_fiftyone_embeddings_never_unpickle(tmp_path: Path) -> None:
    from gpic_lab.fo.records import load_embeddings

    marker = tmp_path / "PWNED"
    evil = crafted.pickled_npz(tmp_path / "emb.npz", "keys", marker, embeddings=np.zeros((2, 3)))
    with pytest.raises(UsageError, match="object array"):
        load_embeddings(evil)
    assert not marker.exists()


@pytest.mark.parametrize("over", [{"dino_mu": np.array(["a", "b", "c", "d"])},
                                  {"dino_sigma": np.array([["1"] * 4] * 4)},
                                  {"n": np.array("many")}, {"key": np.arange(20.0)},
                                  {"tar_idx": np.array(["x"] * 20)}],
                         ids=["mu-strings", "sigma-strings", "n-string", "key-floats", "tar-idx-strings"])
def test_fd_on_mistyped_members_is_one_line_exit_2(tmp_path: Path, over: dict[str, np.ndarray]) -> None:
    bad = _stats(tmp_path / "bad.npz", **over)
    rc, _, err = cli(["fd", str(bad), str(_stats(tmp_path / "good.npz"))])
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_string_key_arrays_still_read(tmp_path: Path) -> None:
    from gpic_lab.evaluation.refstats import read_stats

    st = read_stats(_stats(tmp_path / "s.npz", key=np.array([f"{i:064x}".encode() for i in range(20)])))
    assert st["keys"][3] == f"{3:064x}" and st["tar_idx"][-1] == 3


def test_no_module_of_the_package_unpickles() -> None:
    """The audit as a test: no allow_pickle=True, pickle/marshal/shelve/dill loads, torch.load without
    weights_only=True, yaml.load, eval or exec anywhere in gpic_lab."""
    root = Path(__file__).resolve().parents[1] / "gpic_lab"
    found = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                kw = {k.arg: ast.unparse(k.value) for k in node.keywords}
                if kw.get("allow_pickle") not in (None, "False") or name in ("eval", "exec") or \
                        name.split(".")[-1] in ("loads", "load") and name.split(".")[0] in (
                            "pickle", "marshal", "shelve", "dill", "cloudpickle", "joblib", "yaml") or \
                        name == "torch.load" and kw.get("weights_only") != "True":
                    found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert not found, found
