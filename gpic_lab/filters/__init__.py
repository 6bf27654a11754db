"""Filter stages (GPIC's stage 1 license rules and stage 2 image filters), each ``fn(samples, params) ->
[Decision]`` run by ``gpic_lab.engine.stages.run_stage`` (``gpic-lab stage NAME``).

- ``license``: stage ``license`` (permissive license, attribution, matching URL).
- ``quality``: stage ``quality`` (decode, size, aspect, exposure, blur; ``check_image``, ``QualityThresholds``);
  ``pixels``: its decoding at the analysis size (DCT-scaled JPEG luma, libspng for common PNGs, PIL otherwise).
- ``safety``: stage ``safety-cpu`` (NudeNet ONNX stand-in on CPU).
- ``vlm_judge``: stage ``vlm-judge`` (Qwen3-VL-4B quality and safety prompts in ``prompts/``).
- ``report``: notebook 03's tables and figures.

Reads shards; writes decisions tables through the engine.
"""
