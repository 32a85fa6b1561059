"""DINO-WM: a latent world model on frozen DINOv2 patch features, planned with CEM or gradient descent.

Import the classes from `wm_hub` (lazily) or from `configuration_dino_wm` / `modeling_dino_wm`; this
package imports nothing itself, so that registering its config with `AutoConfig` loads no model.
"""
