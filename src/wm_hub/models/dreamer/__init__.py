"""DreamerV3: an RSSM world model learned from replayed experience and an actor-critic trained in imagination.

Import the classes from `wm_hub` (lazily) or from `configuration_dreamer` / `modeling_dreamer`; this package
imports nothing itself, so that registering its config with `AutoConfig` loads no model.
"""
