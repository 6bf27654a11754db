"""Pack manifest (per shard: file, sha256, samples, bytes, caption-type and source counts), datasheet, verify.

The manifest holds no timestamps or absolute paths, so the same inputs + seed give a byte-identical file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpic_lab.errors import UsageError, printable

FORMAT = "gpic-lab-manifest/1"
CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def build_manifest(entries: list[dict[str, Any]], plan: Any, seed: int, n_shards: int) -> dict[str, Any]:
    """The manifest dict: format, seed, per-shard entries, split and tier totals."""

    summary = plan_summary(plan)
    tiers = {t: {"shards": n, "samples": summary["tiers"][t],
                 "files": [e["file"] for e in entries if e["split"] == "train"][:n]} for t, n in plan.tiers.items()}
    return {"format": FORMAT, "seed": seed, "requested_train_shards": n_shards,
            "splits": {s: {"shards": sum(e["split"] == s for e in entries), "samples": summary["splits"][s]}
                       for s in ("train", "val", "test")},
            "tiers": tiers, "total_bytes": sum(e["bytes"] for e in entries),
            "shards": [{k: e[k] for k in ("file", "split", "index", "samples", "bytes", "sha256", "tiers",
                                          "caption_types", "sources")} for e in entries]}


def build_datasheet(plan: Any, entries: list[dict[str, Any]], seed: int) -> dict[str, Any]:
    """Datasheet dict: counts per stage and reason, license table per split, caption/source mix, tier sizes. The
    per-sample counts are the sums of each shard's (``entries``: `writing.shard_counts`, counted as it was written)."""
    summary = plan_summary(plan)
    per_stage: dict[str, dict[str, int]] = defaultdict(dict)
    for d in plan.dropped:
        per_stage[d["stage"]][d["reason"]] = per_stage[d["stage"]].get(d["reason"], 0) + 1
    licenses: Counter[tuple[str, str, str]] = Counter()
    mix: dict[str, Counter[str]] = defaultdict(Counter)
    sources: dict[str, Counter[str]] = defaultdict(Counter)
    for e in entries:
        for family, lic, n in e["licenses"]:
            licenses[(e["split"], family, lic)] += n
        mix[e["split"]].update(e["caption_types"])
        sources[e["split"]].update(e["sources"])
    return {"seed": seed, "pool": summary["pool"], "kept": summary["kept"], "excluded": summary["pool"] - summary["kept"],
            "stages_applied": plan.applied_stages,
            "drops": {s: dict(sorted(r.items())) for s, r in sorted(per_stage.items())},
            "licenses": [{"split": s, "family": f, "license": lic, "count": n}
                         for (s, f, lic), n in sorted(licenses.items())],
            "caption_types": {s: dict(sorted(c.items())) for s, c in sorted(mix.items())},
            "sources": {s: dict(sorted(c.items())) for s, c in sorted(sources.items())},
            "splits": summary["splits"], "tiers": summary["tiers"],
            "tier_shards": dict(plan.tiers), "shards": len(entries)}


def datasheet_markdown(sheet: dict[str, Any]) -> str:
    """Human-readable datasheet."""
    lines = ["# Datasheet (gpic-lab pack)", "", f"- seed: {sheet['seed']}",
             f"- pool: {sheet['pool']} samples; kept {sheet['kept']}; excluded {sheet['excluded']}",
             f"- stages applied: {', '.join(sheet['stages_applied']) or 'none'}", "",
             "## Exclusions per stage and reason", "", "| stage | reason | samples |", "|---|---|---|"]
    lines += [f"| {s} | {r} | {n} |" for s, rs in sheet["drops"].items() for r, n in rs.items()] or ["| - | - | 0 |"]
    lines += ["", "## Splits and tiers", "", "| split/tier | samples | shards |", "|---|---|---|"]
    lines += [f"| {s} | {n} | |" for s, n in sheet["splits"].items()]
    lines += [f"| {t} | {n} | {sheet['tier_shards'][t]} |" for t, n in sheet["tiers"].items()]
    lines += ["", "## Caption types per split", "", "| split | " + " | ".join(("tag", "short", "medium", "long")) + " |",
              "|---|---|---|---|---|"]
    lines += [f"| {s} | " + " | ".join(str(c.get(t, 0)) for t in ("tag", "short", "medium", "long")) + " |"
              for s, c in sheet["caption_types"].items()]
    lines += ["", "## Sources per split", "", "| split | source | samples |", "|---|---|---|"]
    lines += [f"| {s} | {src} | {n} |" for s, c in sheet["sources"].items() for src, n in c.items()]
    lines += ["", "## Licenses", "", "| split | family | license | samples |", "|---|---|---|---|"]
    lines += [f"| {r['split']} | {r['family']} | {r['license']} | {r['count']} |" for r in sheet["licenses"]]
    if "release" in sheet:
        from gpic_lab.pack.card import release_markdown

        lines += release_markdown(sheet["release"])
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, manifest: dict[str, Any], sheet: dict[str, Any]) -> None:
    """manifest.json, datasheet.json and datasheet.md, atomically."""
    from gpic_lab.fsio import write_bytes_atomic, write_json_atomic

    write_json_atomic(out / "manifest.json", manifest)
    write_json_atomic(out / "datasheet.json", sheet)
    write_bytes_atomic(out / "datasheet.md", datasheet_markdown(sheet).encode())


@dataclass(frozen=True, slots=True)
class VerifyProblem:
    """One shard that does not match the manifest."""

    file: str
    code: str  # missing | size-mismatch | sha256-mismatch
    message: str

    def line(self) -> str:
        return f"{printable(self.file)}: {self.code}: {printable(self.message)}"


def load_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and sanity-check a manifest (UsageError with one line when it is not one)."""
    p = Path(path)
    if p.is_dir():
        p = p / "manifest.json"
    try:
        manifest = json.loads(p.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise UsageError(f"{p}: manifest not found") from exc
    except OSError as exc:  # a directory, no permission, an I/O error
        raise UsageError(f"{p}: unreadable manifest ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{p}: not a JSON manifest ({exc})") from exc
    except RecursionError:
        raise UsageError(f"{p}: not a JSON manifest (nested too deeply)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("shards"), list):
        raise UsageError(f"{p}: not a {FORMAT} manifest")
    for i, entry in enumerate(manifest["shards"]):
        _check_entry(p, i, entry)
    return manifest


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _check_entry(p: Path, i: int, entry: Any) -> None:
    """One shards[] entry: file a safe relative path, bytes a non-negative int, sha256 64 hex characters."""
    if not isinstance(entry, dict) or not {"file", "bytes", "sha256"} <= entry.keys():
        raise UsageError(f"{p}: shards[{i}] is not an entry with file, bytes and sha256")
    if not isinstance(entry["file"], str) or not entry["file"]:
        raise UsageError(f"{p}: shards[{i}]: file must be a relative path string")
    name = Path(entry["file"])
    if name.is_absolute() or ".." in name.parts:  # a downloaded manifest must not point outside its root
        raise UsageError(f"{p}: shards[{i}]: unsafe file name {entry['file']!r}")
    if type(entry["bytes"]) is not int or entry["bytes"] < 0:
        raise UsageError(f"{p}: shards[{i}]: bytes must be a non-negative integer, got {entry['bytes']!r}")
    if not isinstance(entry["sha256"], str) or not _SHA256.fullmatch(entry["sha256"]):
        raise UsageError(f"{p}: shards[{i}]: sha256 must be 64 lowercase hex characters")


def verify(manifest_path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None,
           check_hash: bool = True) -> tuple[list[VerifyProblem], int]:
    """Check every shard of a manifest under ``root`` (default: the manifest's directory).

    Returns (problems, number of shards checked). Sizes are checked first (cheap), then sha256.
    """
    p = Path(manifest_path)
    manifest = load_manifest(p)
    base = Path(root) if root is not None else (p if p.is_dir() else p.parent)
    problems = []
    for entry in manifest["shards"]:
        f = base / entry["file"]
        if not f.is_file():
            problems.append(VerifyProblem(entry["file"], "missing", f"not found under {base}"))
            continue
        size = f.stat().st_size
        if size != entry["bytes"]:
            problems.append(VerifyProblem(entry["file"], "size-mismatch", f"{size} bytes, manifest says {entry['bytes']}"))
        elif check_hash and sha256_file(f) != entry["sha256"]:
            problems.append(VerifyProblem(entry["file"], "sha256-mismatch", "content differs from the manifest"))
    return problems, len(manifest["shards"])


def plan_summary(plan: Any) -> dict[str, Any]:
    """Small JSON-able summary of a plan (sizes per split and tier, drops per stage/reason)."""
    sizes = {split: sum(len(s) for s in shards) for split, shards in plan.shards.items()}
    tiers = {t: sum(len(s) for s in plan.shards["train"][:n]) for t, n in plan.tiers.items()}
    drops = Counter(f"{d['stage']}:{d['reason']}" for d in plan.dropped)
    return {"pool": plan.pool, "kept": len(plan.meta), "splits": sizes, "tiers": tiers,
            "drops": dict(sorted(drops.items())), "stages": plan.applied_stages}
