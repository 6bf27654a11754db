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


def test_derived_word_counts_are_caption_words(catalog) -> None:
    assert list(catalog["caption_words"]) == [explore.caption_words(c) for c in catalog["caption"]]


def test_figures_render(catalog, sample_dir: Path, tmp_path: Path) -> None:
    """Notebook 01's figures from the out-of-core tables, and the same figures from the pandas tables."""
    import matplotlib

    from gpic_lab.shards import explore_figures as figures
    from gpic_lab.shards import explore_lazy
    from gpic_lab.shards.catalog import write_catalog

    matplotlib.use("Agg")
    path = tmp_path / "catalog.parquet"
    write_catalog([sample_dir / "train", sample_dir / "val"], path, workers=1)
    lf = explore_lazy.scan(path)
    drawn = {"licenses": [figures.plot_licenses(t) for t in (explore_lazy.license_table(lf),
                                                             explore.license_table(catalog))],
             "mix": [figures.plot_caption_mix(t) for t in (explore_lazy.caption_mix(lf), explore.caption_mix(catalog))],
             "lengths": [figures.plot_caption_lengths(explore_lazy.word_counts(lf))],
             "sizes": [figures.plot_sizes(explore_lazy.size_counts(lf))],
             "shards": [figures.plot_shard_counts(t) for t in (explore_lazy.shard_counts(lf),
                                                               explore.shard_counts(catalog))]}
    for name, figs in drawn.items():
        assert all(fig.axes for fig in figs), name
    grid = explore.image_grid(catalog, n=4)
    assert sum(bool(ax.images) for ax in grid.axes) == 4
