"""GPIC's reference baseline: the JiT-T2I pixel-space flow-matching Transformer, its training, sampling and report.

Modules: `config` (named model configs, FLOPs), `model` (the denoiser), `text_encoder` (frozen Qwen3), `flow`
(loss, time sampling, Euler + CFG sampler), `ema`, `data` (loader batches in a resumable order), `dist`
(torch.distributed helpers), `checkpoint`, `trainlog`, `train`, `generate`, `report` (notebook figures and tables).
"""
