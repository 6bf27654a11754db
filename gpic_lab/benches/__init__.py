"""Benchmarks for `gpic-lab bench NAME`: one module per name, each with `run(args) -> dict` and an optional
`add_arguments(parser)`. A bench runs ours and a fair baseline (what a competent user does with the peer tool, same
inputs and settings) side by side in one run and returns at least name, unit, ours, baseline, ratio (ours/baseline,
higher is better), plus ``mismatch`` (a reason, through `record.gate`) when the two sides disagree. The dispatcher
adds peak memory and hands the result to `record.finish`: correctness gate (exit 1, ratio null), the results file
(benchmarks/results.jsonl) and the JSON line. ``record`` is that machinery, not a bench."""


def plain_pil_decode(blob: bytes) -> None:
    """The plain full-size PIL decode (`Image.open(...).convert("RGB")`) benches compare a fast path with."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(blob)) as im:
        im.convert("RGB")
