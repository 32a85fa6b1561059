"""Cosmos-style world models: causal video tokenizers (continuous and FSQ-discrete) and, as their
issues land, diffusion and autoregressive world models over their latents.

Import the classes from `wm_hub` (lazily) or from their modules; this package imports nothing itself.
"""
