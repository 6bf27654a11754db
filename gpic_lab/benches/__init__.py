"""Benchmarks for `gpic-lab bench NAME`: one module per name, each with `run(args) -> dict` and an optional
`add_arguments(parser)`. A bench runs ours and a baseline side by side in one run and returns at least
name, unit, ours, baseline, ratio (ours/baseline, higher is better); the dispatcher adds peak memory."""


def plain_pil_decode(blob: bytes) -> None:
    """The plain full-size PIL decode (`Image.open(...).convert("RGB")`) benches compare a fast path with."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(blob)) as im:
        im.convert("RGB")
