"""GPIC's tiers, defined once: Nano / Lite / Full are the first 1 % / 10 % / 100 % of the train shards.

GPIC (paper §2.5, dataset card): 8,000 shuffled train shards; "the first 80, 800, and 8000 shards correspond to
GPIC-Nano, GPIC-Lite, and GPIC-Full", and each record's ``split`` lists the tiers holding it (so a record of train
shard 0 says ``["nano", "lite", "full"]``). Pack, the loader, the record schema and the sample corpus all use this
module, so they agree for any number of shards.

OUR ASSUMPTIONS where GPIC only gives the 8,000-shard case: the tiers scale as fractions of the train shard count,
rounded half up, with at least one shard per tier (2 shards: Nano = Lite = shard 0; 10 shards: Nano = Lite = shard
0; 25 shards: Nano 1, Lite 3); val and test records carry ``split = []`` (the card does not document their value).
"""

from __future__ import annotations

TIERS = ("nano", "lite", "full")
TIER_PERCENT = {"nano": 1, "lite": 10, "full": 100}
NESTED = ((), ("full",), ("lite", "full"), ("nano", "lite", "full"))  # every valid tier list, in record order


def tier_shard_counts(n_train_shards: int) -> dict[str, int]:
    """Leading train shards per tier: 1 % / 10 % / 100 % rounded half up, at least one each (none without shards).

    >>> tier_shard_counts(8000)
    {'nano': 80, 'lite': 800, 'full': 8000}
    """
    if n_train_shards < 0:
        raise ValueError(f"negative shard count {n_train_shards}")
    if n_train_shards == 0:
        return dict.fromkeys(TIERS, 0)
    return {t: max(1, (n_train_shards * p + 50) // 100) for t, p in TIER_PERCENT.items()}


def tiers_of_shard(index: int, n_train_shards: int) -> list[str]:
    """The tiers holding train shard ``index`` of ``n_train_shards`` (the record's ``split`` list)."""
    if not 0 <= index < n_train_shards:
        raise ValueError(f"train shard index {index} outside 0..{n_train_shards - 1}")
    counts = tier_shard_counts(n_train_shards)
    return [t for t in TIERS if index < counts[t]]


def is_nested(split: list[str]) -> bool:
    """Whether a record's ``split`` is one of the nested tier lists ([], [full], [lite, full], [nano, lite, full])."""
    return tuple(split) in NESTED
