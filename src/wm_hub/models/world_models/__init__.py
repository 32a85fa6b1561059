"""World Models (Ha & Schmidhuber 2018): V (a convolutional VAE), M (an MDN-RNN) and C (a linear controller trained
by CMA-ES, in the real environment or inside M's dream), bundled by `WorldModelsAgent`.

Import the classes from `wm_hub` (lazily) or from the modules here; this package imports nothing itself, so that
registering its configs with `AutoConfig` loads no model.
"""
