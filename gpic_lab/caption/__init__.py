"""Captioning (GPIC's stage 4): one Qwen3-VL caption per image at one of four levels, and caption QC.

- ``levels``: ``LEVELS``, the 1/45/45/9 % ``MIX``, ``caption_type_for`` (level per key), token budgets,
  ``load_prompt`` (``prompts/caption_<level>.txt``).
- ``captioner``: ``make_captioner`` (transformers or vLLM backend), ``caption_shards`` (``gpic-lab caption``).
- ``feed``: the background image decode that keeps the GPU fed; ``store``: reading ``*.captions.parquet``.
- ``qc``: stage ``caption-qc``; ``redo``: the second pass over what QC failed (``caption --redo QC_DIR``);
  ``report``: notebook 05's tables and figures.

Reads shards; writes ``OUT/<shard>.captions.parquet`` (``.redo.captions.parquet`` for the second pass) and
``caption_config.json``.
"""
