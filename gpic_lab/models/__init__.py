"""The networks the stages load, each with its exact input transform and a tiny random twin for tests.

- ``qwen_vl``: Qwen3-VL (captioning, the VLM judge, the caption audits): ``load_qwen3vl``, ``generate``,
  ``build_tiny_qwen3vl``, ``random_qwen3vl_4b``.
- ``dinov2``: DINOv2 ViT-L/14 as FD-DINOv2 uses it (CLS after the final norm): ``load_dinov2``, ``features``,
  ``build_tiny_dinov2``; ``dinov2_input``: the protocol's 224 stretch + ImageNet normalisation.

Reads weights from a local directory or the Hugging Face cache; writes nothing.
"""
