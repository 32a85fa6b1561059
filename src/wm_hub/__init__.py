"""wm_hub: a hub of world models.

`import wm_hub` is cheap: public names are imported on first use (PEP 562), and wm_hub's configs and
models are registered with transformers' Auto classes as soon as those are loaded.
"""

from __future__ import annotations

import importlib
from typing import Any

from wm_hub.auto import install_import_hook

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY_IMPORTS = {
    "resolve": "wm_hub.hub",
    "load": "wm_hub.hub",
    "list_models": "wm_hub.hub",
    "model_info": "wm_hub.hub",
    "push": "wm_hub.hub",
    "ModelNotFoundError": "wm_hub.hub",
    "CheckpointError": "wm_hub.checkpoint",
    "Metric": "wm_hub.cards",
    "write_model_card": "wm_hub.cards",
    "register_auto_classes": "wm_hub.auto",
    "WorldModelPreTrainedModel": "wm_hub.modeling_utils",
    "record_episodes": "wm_hub.data",
    "ClipDataset": "wm_hub.data",
    "psnr": "wm_hub.metrics",
    "ssim": "wm_hub.metrics",
    # Genie
    "GenieTokenizerConfig": "wm_hub.models.genie.configuration_genie",
    "LatentActionConfig": "wm_hub.models.genie.configuration_genie",
    "DynamicsConfig": "wm_hub.models.genie.configuration_genie",
    "VideoTokenizer": "wm_hub.models.genie.modeling_genie",
    "LatentActionModel": "wm_hub.models.genie.modeling_genie",
    "DynamicsModel": "wm_hub.models.genie.modeling_genie",
    "GeniePipeline": "wm_hub.models.genie.pipeline_genie",
    # Cosmos-style
    "CausalVideoTokenizer": "wm_hub.models.cosmos.autoencoder_cosmos",
    "WorldTransformer3DModel": "wm_hub.models.cosmos.transformer_cosmos",
    "Text2WorldPipeline": "wm_hub.models.cosmos.pipeline_cosmos",
    "Video2WorldPipeline": "wm_hub.models.cosmos.pipeline_cosmos",
    "WorldARConfig": "wm_hub.models.cosmos.configuration_cosmos",
    "WorldARModel": "wm_hub.models.cosmos.modeling_cosmos",
    "ARVideo2WorldPipeline": "wm_hub.models.cosmos.pipeline_cosmos",
    # DreamerV3
    "DreamerConfig": "wm_hub.models.dreamer.configuration_dreamer",
    "DreamerWorldModel": "wm_hub.models.dreamer.modeling_dreamer",
    "DreamerAgent": "wm_hub.models.dreamer.modeling_dreamer",
    # World Models (Ha & Schmidhuber 2018)
    "ConvVAEConfig": "wm_hub.models.world_models.configuration_world_models",
    "MDNRNNConfig": "wm_hub.models.world_models.configuration_world_models",
    "ControllerConfig": "wm_hub.models.world_models.configuration_world_models",
    "ConvVAE": "wm_hub.models.world_models.modeling_world_models",
    "MDNRNN": "wm_hub.models.world_models.modeling_world_models",
    "Controller": "wm_hub.models.world_models.modeling_world_models",
    "WorldModelsAgent": "wm_hub.models.world_models.pipeline_world_models",
    # DINO-WM
    "DinoWMConfig": "wm_hub.models.dino_wm.configuration_dino_wm",
    "DinoWMModel": "wm_hub.models.dino_wm.modeling_dino_wm",
}

__all__ = sorted(_LAZY_IMPORTS)


def __getattr__(name: str) -> Any:
    if name not in _LAZY_IMPORTS:
        raise AttributeError(f"module 'wm_hub' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY_IMPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_IMPORTS))


install_import_hook()
