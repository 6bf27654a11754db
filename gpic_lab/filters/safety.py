"""CPU safety STAND-IN (stage ``safety-cpu``): NudeNet's 320n ONNX detector, shipped inside the ``nudenet`` wheel.

GPIC filtered unsafe images with a conservative Qwen3-VL-4B judge (``gpic_lab.filters.vlm_judge``, GPU). This stage is what
runs offline and without a GPU: it only detects exposed nudity (NudeNet's classes), not violence, gore or other
unsafe content, so its decisions are recorded with ``safety_model = STAND_IN`` and it must be reported as a
stand-in wherever its numbers appear.

Preprocessing reproduces ``nudenet.NudeDetector.detect`` (pad bottom/right to a square with black, resize to 320,
/ 255, and the BGR plane order its cv2 path ends up feeding the model; tests compare scores with it);
images are batched through one onnxruntime session per process. An image is dropped (reason ``unsafe-nudity``) when
the highest score of any ``UNSAFE_CLASSES`` anchor is >= ``threshold`` (default 0.4: conservative, below NudeNet's
usual 0.5). Scores: ``nudity`` (that maximum) and ``face`` (highest face score, for context).
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np

from gpic_lab.engine.params import ParamSpec, declare
from gpic_lab.errors import GpicError, UsageError

STAND_IN = "nudenet-320n (CPU stand-in for the Qwen3-VL safety judge; nudity only)"
LABELS = ("FEMALE_GENITALIA_COVERED", "FACE_FEMALE", "BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED",
          "FEMALE_GENITALIA_EXPOSED", "MALE_BREAST_EXPOSED", "ANUS_EXPOSED", "FEET_EXPOSED", "BELLY_COVERED",
          "FEET_COVERED", "ARMPITS_COVERED", "ARMPITS_EXPOSED", "FACE_MALE", "BELLY_EXPOSED",
          "MALE_GENITALIA_EXPOSED", "ANUS_COVERED", "FEMALE_BREAST_COVERED", "BUTTOCKS_COVERED")
UNSAFE_CLASSES = ("FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "FEMALE_BREAST_EXPOSED", "ANUS_EXPOSED",
                  "BUTTOCKS_EXPOSED")
FACE_CLASSES = ("FACE_FEMALE", "FACE_MALE")
INPUT_SIDE = 320
DEFAULTS: dict[str, Any] = {"threshold": 0.4, "batch_size": 16, "threads": 1, "model_path": None}
_SESSIONS: dict[tuple[str, int], Any] = {}


def model_path() -> str:
    """The 320n.onnx file inside the installed nudenet wheel."""
    try:
        import nudenet
    except ImportError:
        raise GpicError("safety-cpu needs the nudenet wheel (pip install nudenet==3.4.2)") from None
    return os.path.join(os.path.dirname(nudenet.__file__), "320n.onnx")


def session(path: str | None = None, threads: int = 1) -> Any:
    """One cached onnxruntime CPU session per process (threads: intra-op threads; 1 under a process pool)."""
    import onnxruntime as ort

    path = path or model_path()
    if (path, threads) not in _SESSIONS:
        if not os.path.isfile(path):
            raise UsageError(f"safety-cpu: model file {path} not found")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        _SESSIONS[(path, threads)] = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return _SESSIONS[(path, threads)]


def preprocess(data: bytes, side: int = INPUT_SIDE) -> np.ndarray:
    """Encoded image -> float32 [3, side, side] (padded bottom/right to a square, BGR planes in [0, 1])."""
    from PIL import Image

    from gpic_lab.core.images import to_8bit

    im = Image.open(io.BytesIO(data))
    w, h = im.size
    if im.format == "JPEG" and max(w, h) > 2 * side:
        im.draft("RGB", (max(1, w * side // max(w, h)), max(1, h * side // max(w, h))))
    im = to_8bit(im).convert("RGB")
    longest = max(im.size)
    square = Image.new("RGB", (longest, longest))
    square.paste(im, (0, 0))
    arr = np.asarray(square.resize((side, side), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    return arr[..., ::-1].transpose(2, 0, 1).copy()  # BGR planes: what NudeDetector.detect feeds the model


def class_scores(batch: np.ndarray, sess: Any) -> np.ndarray:
    """Highest score per NudeNet class over all anchors: [N, len(LABELS)]."""
    out = sess.run(None, {sess.get_inputs()[0].name: batch})[0]  # [N, 4 + classes, anchors]
    return out[:, 4:, :].max(axis=2)


def _params(params: dict[str, Any] | None) -> dict[str, Any]:
    merged = {**DEFAULTS, **(params or {})}
    unknown = sorted(set(merged) - set(DEFAULTS))
    if unknown:
        raise UsageError(f"safety-cpu: unknown parameter(s) {unknown}; known: {sorted(DEFAULTS)}")
    try:
        threshold = float(merged["threshold"])
        batch, threads = int(merged["batch_size"]), int(merged["threads"])
    except (TypeError, ValueError) as exc:
        raise UsageError(f"safety-cpu: bad parameter value ({exc})") from None
    if not 0.0 <= threshold <= 1.0 or batch < 1 or threads < 1:
        raise UsageError("safety-cpu: threshold must be in [0, 1], batch_size and threads >= 1")
    return {**merged, "threshold": threshold, "batch_size": batch, "threads": threads}


@declare(ParamSpec("threshold", "float", DEFAULTS["threshold"], "drop when a NudeNet exposed-class score reaches "
                   "this", low=0, high=1),
         ParamSpec("batch_size", "int", DEFAULTS["batch_size"], "images per ONNX run", low=1, high=4096),
         ParamSpec("threads", "int", DEFAULTS["threads"], "onnxruntime intra-op threads per worker", low=1, high=256),
         ParamSpec("model_path", "path", None, "NudeNet ONNX model (default: the wheel's 320n.onnx)", nullable=True))
def safety_stage(samples: list[Any], params: dict[str, Any] | None = None) -> list[Any]:
    """Stage ``safety-cpu``: drop ``unsafe-nudity`` (NudeNet stand-in) or ``undecodable``; one Decision per sample.

    params: threshold (0.4), batch_size (16), threads (1), model_path (default: the wheel's 320n.onnx).
    Extras: safety_model (``STAND_IN``), safety_top (highest unsafe class, or null).
    """
    p = _params(params)
    sess = session(p["model_path"], p["threads"])
    unsafe = [LABELS.index(c) for c in UNSAFE_CLASSES]
    faces = [LABELS.index(c) for c in FACE_CLASSES]
    results: dict[str, tuple[float, float, str | None]] = {}
    for start in range(0, len(samples), p["batch_size"]):
        chunk, arrays = [], []
        for s in samples[start:start + p["batch_size"]]:
            try:
                arrays.append(preprocess(s.image or b""))
                chunk.append(s.key)
            except Exception:  # noqa: BLE001 - an image PIL cannot open gets its own reason below
                continue
        if arrays:
            scores = class_scores(np.stack(arrays), sess)
            for key, row in zip(chunk, scores, strict=True):
                top = max(unsafe, key=lambda i: row[i])
                results[key] = (float(row[top]), float(row[faces].max()), LABELS[top])
    return [_decision(s.key, results.get(s.key), p["threshold"]) for s in samples]


def _decision(key: str, result: tuple[float, float, str | None] | None, threshold: float) -> Any:
    from gpic_lab.engine.records import Decision

    if result is None:
        return Decision(key, False, "undecodable", scores={"nudity": float("nan"), "face": float("nan")},
                        extra={"safety_model": STAND_IN, "safety_top": None})
    nudity, face, top = result
    flagged = nudity >= threshold
    return Decision(key, not flagged, "unsafe-nudity" if flagged else None, scores={"nudity": nudity, "face": face},
                    extra={"safety_model": STAND_IN, "safety_top": top if flagged else None})
