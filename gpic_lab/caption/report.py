"""Tables and figures for notebook 05 (captioning + caption QC): type mix, gallery, QC comparisons, plants."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from gpic_lab.caption.levels import LEVELS, MIX, caption_type_for


def type_mix(paths: Sequence[str | os.PathLike[str]], seed: int = 0) -> Any:
    """Per shard: how many keys the seeded hash assigns to each level, vs the expected 1/45/45/9 %."""
    import pandas as pd

    from gpic_lab.shards.reader import iter_samples, list_shards

    rows = []
    for shard in list_shards(paths):
        levels = [caption_type_for(s.key, seed) for s in iter_samples([shard], images=False)]
        row: dict[str, Any] = {"shard": os.path.basename(shard), "n": len(levels)}
        row.update({lv: levels.count(lv) for lv in LEVELS})
        row["max_dev_sigma"] = max_deviation_sigma(row, len(levels))
        rows.append(row)
    return pd.DataFrame(rows, columns=["shard", "n", *LEVELS, "max_dev_sigma"])


def max_deviation_sigma(counts: Mapping[str, int], n: int) -> float:
    """Largest |count - expected| over levels, in binomial standard deviations (0 for an empty shard)."""
    if not n:
        return 0.0
    return round(max(abs(counts.get(lv, 0) - n * p) / max((n * p * (1 - p)) ** 0.5, 1e-9)
                     for lv, p in MIX.items()), 2)


def honest_rows(levels: Mapping[str, Mapping[str, str]]) -> list[dict[str, Any]]:
    """QC input rows (key, caption_type, caption) from a {key: {level: caption}} file, one row per level."""
    return [{"key": key, "caption_type": lv, "caption": caps[lv], "truncated": False, "usable": None}
            for key, caps in sorted(levels.items()) for lv in LEVELS if caps.get(lv)]


def qc_levels(levels: Mapping[str, Mapping[str, str]], params: Mapping[str, Any] | None = None) -> list[dict]:
    """QC of hand-written captions of all four levels. Duplicates are checked within a level only (the same
    image's levels are different captions of one image, never copies across images)."""
    from gpic_lab.caption.qc import qc_rows

    rows = honest_rows(levels)
    out: list[dict[str, Any]] = []
    for lv in LEVELS:
        out += qc_rows([r for r in rows if r["caption_type"] == lv], params)
    return out


def qc_captions_frame(frame: Any, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """QC of a captions parquet frame (``gpic_lab.caption.store.load_captions``); truncation from its ``truncated`` column."""
    from gpic_lab.caption.qc import qc_rows

    rows = [{"key": r["key"], "caption_type": r["caption_type"], "caption": r["caption"],
             "truncated": bool(r["truncated"]), "usable": None} for r in frame.to_dict("records")]
    return qc_rows(rows, params)


def compare_rates(tables: Mapping[str, Any]) -> Any:
    """Rate tables side by side: {source name: caption_qc.rate_table(...)} -> one frame with a ``source`` column."""
    import pandas as pd

    return pd.concat([t.assign(source=name) for name, t in tables.items()], ignore_index=True).set_index(
        ["source", "caption_type"]).round(3)


def planted_check(rows: Sequence[Mapping[str, Any]], ground_truth: str | os.PathLike[str]) -> Any:
    """Every planted bad caption (ground_truth kind == caption-qc) against the reasons QC gave it."""
    import pandas as pd

    truth = pd.read_csv(ground_truth)
    truth = truth[(truth["kind"] == "caption-qc") | ((truth["kind"] == "control") & (truth["detail"] == "caption-qc"))]
    got = {r["key"]: r for r in rows}
    out = []
    for t in truth.itertuples(index=False):
        r = got.get(t.key)
        reasons = r["reasons"].split(";") if r and r["reasons"] else []
        expected_ok = t.kind == "control"
        caught = (not reasons) if expected_ok else (t.label in reasons)
        out.append({"key": t.key[:12], "expected": "keep" if expected_ok else t.label, "detail": t.detail,
                    "found": ";".join(reasons) or ("keep" if r else "MISSING"), "caught": bool(r) and caught})
    return pd.DataFrame(out, columns=["key", "expected", "detail", "found", "caught"])


def rates_figure(tables: Mapping[str, Any]) -> Any:
    """One panel per caption source: share of captions failing each rule, per level."""
    import matplotlib.pyplot as plt
    import numpy as np

    from gpic_lab.caption.checks import REASON_ORDER

    fig, axes = plt.subplots(1, len(tables), figsize=(6.5 * len(tables), 4.2), sharey=True, squeeze=False)
    for ax, (name, table) in zip(axes[0], tables.items(), strict=True):
        x = np.arange(len(REASON_ORDER))
        present = [lv for lv in LEVELS if lv in set(table["caption_type"])]
        width = 0.8 / max(len(present), 1)
        for i, lv in enumerate(present):
            row = table[table["caption_type"] == lv].iloc[0]
            ax.bar(x + i * width, [row[r] for r in REASON_ORDER], width, label=f"{lv} (n={int(row['n'])})")
        if not table[list(REASON_ORDER)].to_numpy().any():
            ax.text(0.5, 0.5, "no rule failures", transform=ax.transAxes, ha="center", fontsize=12, color="0.4")
        ax.set_xticks(x + 0.4 - width / 2, REASON_ORDER, rotation=40, ha="right")
        ax.set_ylim(0, 1.05)
        ax.set_title(name)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("share of captions failing the rule")
    fig.tight_layout()
    return fig


def gallery_figure(paths: Sequence[str | os.PathLike[str]], levels: Mapping[str, Mapping[str, str]],
                   generated: Any = None, n: int = 3, width: int = 44) -> Any:
    """Images next to their hand-written captions of all four levels and the model's caption (if any)."""
    import textwrap

    import matplotlib.pyplot as plt

    from gpic_lab.shards.reader import iter_samples, list_shards

    gen = {} if generated is None else {r["key"]: r for r in generated.to_dict("records")}
    samples = [s for s in iter_samples(list_shards(paths)) if s.key in levels][:n]
    cols = [*LEVELS, "model"] if gen else list(LEVELS)
    fig, axes = plt.subplots(len(samples), len(cols) + 1, figsize=(2.9 * (len(cols) + 1), 2.7 * max(len(samples), 1)),
                             squeeze=False, gridspec_kw={"width_ratios": [1.1] + [1.6] * len(cols)})
    for row, s in zip(axes, samples, strict=True):
        row[0].imshow(s.open_image().convert("RGB"))
        row[0].set_title(s.key[:12], fontsize=8)
        for ax, col in zip(row[1:], cols, strict=True):
            if col == "model":
                g = gen.get(s.key)
                text = f"[{g['caption_type']}] {printable(g['caption'])}" if g else "(not captioned)"
            else:
                text = levels[s.key].get(col, "")
            ax.text(0, 1, textwrap.fill(text[:700], width), va="top", fontsize=6.5, transform=ax.transAxes)
            ax.set_title(col if col != "model" else "model (placeholder)" if g and g["model_warning"] else col,
                         fontsize=9)
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    return fig


def printable(text: str) -> str:
    """Control and undecodable characters shown as escapes (tiny-model placeholders are random bytes)."""
    return "".join(c if c.isprintable() and c != "\ufffd" else f"\\x{ord(c):02x}" if ord(c) < 256 else "?"
                   for c in text)


def captions_table(frame: Any, width: int = 60) -> Any:
    """Generated captions for display: short keys, printable captions cut to ``width``."""
    cols = ["key", "caption_type", "caption", "n_tokens", "truncated", "prompt_version"]
    return frame[cols].assign(key=frame["key"].str[:12], caption=[printable(c)[:width] for c in frame["caption"]])


def types_match(frame: Any, seed: int = 0) -> bool:
    """True when every row's caption_type is the one the seeded key hash assigns."""
    return all(caption_type_for(k, seed) == t for k, t in zip(frame["key"], frame["caption_type"], strict=True))
