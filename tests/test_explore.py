"""Exploration tables (notebook 01) on the sample corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpic_lab.shards import explore


@pytest.fixture(scope="module")
def catalog(sample_dir: Path):
    frame, problems = explore.load_catalog([sample_dir / "train", sample_dir / "val"], workers=1)
    assert problems == []
    return frame


def test_caption_mix_counts_every_sample(catalog) -> None:
    mix = explore.caption_mix(catalog)
    assert list(mix.index) == ["tag", "short", "medium", "long"]
    assert int(mix["count"].sum()) == len(catalog)
    assert mix["share"].sum() == pytest.approx(1.0)
    assert mix.loc["medium", "target"] == 0.45


def test_caption_lengths_match_hand_count(catalog) -> None:
    table = explore.caption_lengths(catalog)
    tags = catalog.loc[catalog["caption_type"] == "tag", "caption"]
    hand = sorted(len(c.replace(",", " ").split()) for c in tags)
    assert table.loc["tag", "count"] == len(hand)
    assert table.loc["long", "paper_median"] == 131.0
    assert table.loc["short", "median"] > 5
    assert explore.caption_words("red, car, road") == 3


def test_license_and_shard_tables(catalog) -> None:
    lic = explore.license_table(catalog)
    assert lic.loc["total", "total"] == len(catalog)
    shards = explore.shard_counts(catalog)
    assert shards["samples"].sum() == len(catalog)
    assert set(shards.index) == set(catalog["shard_name"])


def test_figures_render(catalog) -> None:
    import matplotlib

    matplotlib.use("Agg")
    for fn in (explore.plot_licenses, explore.plot_caption_mix, explore.plot_caption_lengths, explore.plot_sizes,
               explore.plot_shard_counts):
        fig = fn(catalog)
        assert fig.axes, fn.__name__
    grid = explore.image_grid(catalog, n=4)
    assert sum(bool(ax.images) for ax in grid.axes) == 4
