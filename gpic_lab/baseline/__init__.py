"""GPIC's reference baseline: the JiT-T2I pixel-space flow-matching Transformer, its training, sampling and report.

Modules: `config` (named model configs, FLOPs), `model` (the denoiser), `text_encoder` (frozen Qwen3), `flow`
(loss, time sampling, Euler + CFG sampler), `ema`, `data` (loader batches in a resumable order), `dist`
(torch.distributed helpers), `checkpoint`, `trainlog`, `train`, `generate`, `report` (notebook figures and tables).
`model`, `flow`, `ema`, `step` and `dist` import torch when imported (they define torch modules and functions);
the others import it inside their functions, and nothing here is imported by the CLI until a verb runs.
"""
