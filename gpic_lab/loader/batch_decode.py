"""Consumer-side batch decoding for the training loader: the workers only read shards and draw the crops
(`augment.DeferredTrainTransform`); the training process decodes each batch's JPEGs on the GPU with nvJPEG
(torchvision), then crops, resizes (antialiased bilinear) and flips there. Worker CPU per image drops to reading
the tar, so a few cores feed a GPU whatever the JPEG decode costs. On a machine without CUDA or torchvision the
same code decodes on the CPU (libjpeg-turbo), which keeps the path testable and usable everywhere.

    ds = GpicIterableDataset(shards, transform=DeferredTrainTransform())
    decode = BatchDecoder()                       # cuda when present
    for batch in make_loader(ds, batch_size=32):
        batch = decode(batch)                     # batch["image"]: uint8 [B,3,256,256] on the GPU
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gpic_lab.errors import UsageError
from gpic_lab.loader.augment import CropParams, _decode_pil, crop_box
from gpic_lab.loader.stream import CorruptSampleError

_PER_SAMPLE = ("caption", "caption_type", "key", "member")


def cpu_decode_jpeg(data: Any) -> Any:
    """One JPEG (1-D uint8 tensor) → uint8 CHW tensor on the CPU: libjpeg-turbo, Pillow for what it refuses."""
    import simplejpeg
    import torch

    blob = data.numpy().tobytes()
    try:
        arr = simplejpeg.decode_jpeg(blob, colorspace="RGB")
    except (ValueError, RuntimeError):
        arr = _decode_pil(blob)
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)


class BatchDecoder:
    """Decode, crop and resize a deferred batch (see the module doc) on `device`.

    Args:
        size: output side (GPIC: 256).
        device: "cuda" (nvJPEG through torchvision) or "cpu"; default cuda when available.
        on_corrupt: 'raise' (CorruptSampleError naming the shard member) or 'skip' (the sample leaves the batch
            and is counted in batch["stats"] as skipped:image-decode).
        decode: optional list-of-JPEG-tensors → list of CHW uint8 tensors (None for an unreadable one).
    """

    def __init__(self, size: int = 256, device: str | None = None, on_corrupt: str = "raise",
                 decode: Callable[[Sequence[Any]], list[Any]] | None = None) -> None:
        import torch

        if on_corrupt not in ("raise", "skip"):
            raise UsageError(f"on_corrupt must be 'raise' or 'skip', not {on_corrupt!r}")
        self.size, self.on_corrupt = size, on_corrupt
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self._decode = decode or (self._decode_cuda if self.device.type == "cuda" else self._decode_cpu)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        if "image" in batch:
            return batch  # decoded in the workers already
        offsets = batch["jpeg_offsets"].tolist()
        pre = dict(zip(batch["predecoded_at"].tolist(), batch["predecoded"].unbind(0), strict=True))
        todo = [i for i in range(len(batch["key"])) if i not in pre]
        decoded = dict(zip(todo, self._decode([batch["jpeg_data"][offsets[i]:offsets[i + 1]] for i in todo]),
                           strict=True))
        images, keep = [], []
        for i, key in enumerate(batch["key"]):
            if i in pre:
                images.append(pre[i].to(self.device, non_blocking=True))
            elif decoded[i] is None:
                self._corrupt(batch, batch["member"][i] if "member" in batch else key)
                continue
            else:
                images.append(self._crop_resize(decoded[i], batch["crop"][i].tolist()))
            keep.append(i)
        return self._select(batch, keep, images)

    def _corrupt(self, batch: dict[str, Any], where: str) -> None:
        if self.on_corrupt == "raise":
            raise CorruptSampleError(f"{where}: image-decode (use on_corrupt='skip' to skip and count such samples)")
        batch["stats"] = {**batch["stats"], "skipped:image-decode": batch["stats"].get("skipped:image-decode", 0) + 1}

    def _select(self, batch: dict[str, Any], keep: list[int], images: list[Any]) -> dict[str, Any]:
        import torch

        out = {k: v for k, v in batch.items() if k not in ("jpeg_data", "jpeg_offsets", "crop", "predecoded",
                                                           "predecoded_at")}
        if len(keep) < len(batch["key"]):
            for name in _PER_SAMPLE:
                if name in out:
                    out[name] = [out[name][i] for i in keep]
            index = torch.tensor(keep, dtype=torch.long)
            out["slot"], out["index"] = batch["slot"][index], batch["index"][index]
        out["image"] = (torch.stack(images) if images else
                        torch.empty(0, 3, self.size, self.size, dtype=torch.uint8, device=self.device))
        return out

    def _crop_resize(self, img: Any, crop: list[float]) -> Any:
        """CHW uint8 on the device → the drawn square crop, antialiased bilinear to size×size, flipped if drawn."""
        import torch

        scale, fx, fy, flip = crop
        if img.shape[0] == 1:  # greyscale JPEG
            img = img.expand(3, -1, -1)
        left, top, right, bottom = crop_box(img.shape[-1], img.shape[-2], CropParams(scale, fx, fy, bool(flip)))
        x = img[:, top:bottom, left:right]
        if x.shape[-1] != self.size:
            x = torch.nn.functional.interpolate(x.unsqueeze(0).float(), size=(self.size, self.size), mode="bilinear",
                                                antialias=True, align_corners=False)[0]
            x = x.round_().clamp_(0, 255).to(torch.uint8)
        return x.flip(-1) if flip else x.contiguous()

    def _decode_cpu(self, jpegs: Sequence[Any]) -> list[Any]:
        return [_or_none(cpu_decode_jpeg, j) for j in jpegs]

    def _decode_cuda(self, jpegs: Sequence[Any]) -> list[Any]:
        """nvJPEG for the whole batch in one call; if it fails, one by one, then the CPU, before calling one corrupt."""
        from gpic_lab.loader.torch_loader import gpu_decode

        if not jpegs:
            return []
        try:
            return list(gpu_decode(list(jpegs), device=str(self.device)))
        except RuntimeError:
            pass
        out = []
        for j in jpegs:
            img = _or_none(lambda d: gpu_decode([d], device=str(self.device))[0], j)
            cpu = _or_none(cpu_decode_jpeg, j) if img is None else None
            out.append(img if img is not None else (cpu.to(self.device) if cpu is not None else None))
        return out


def _or_none(fn: Callable[[Any], Any], arg: Any) -> Any:
    from PIL.Image import DecompressionBombError

    try:
        return fn(arg)
    except (OSError, ValueError, RuntimeError, SyntaxError, DecompressionBombError):
        return None
