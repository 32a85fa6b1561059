"""Genie: latent-action world model trained from video alone.

Import the classes from `wm_hub` (lazily) or from `configuration_genie` / `modeling_genie` /
`pipeline_genie`; this package imports nothing itself, so that registering its configs with
transformers' `AutoConfig` never has to load the models.
"""
