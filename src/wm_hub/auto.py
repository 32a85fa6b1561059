"""Registration of wm_hub's configs and models with transformers' `AutoConfig` / `AutoModel`.

Each family package `wm_hub.models.<family>` lists its public classes in the `__all__` of
`configuration_<family>.py` and `modeling_<family>.py`; no central table names them. Registration
runs when transformers' auto modules are loaded (an import hook that `import wm_hub` installs), so
`import wm_hub` stays cheap and `AutoModel.from_pretrained(folder)` still finds our classes.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import pkgutil
import sys
from types import ModuleType

_CONFIG_AUTO = "transformers.models.auto.configuration_auto"
_MODEL_AUTO = "transformers.models.auto.modeling_auto"


def _family_modules(kind: str) -> list[ModuleType]:
    """Import `wm_hub.models.<family>.<kind>_<family>` for every family that has one."""
    import wm_hub.models

    modules = []
    for info in pkgutil.iter_modules(wm_hub.models.__path__):
        name = f"wm_hub.models.{info.name}.{kind}_{info.name}"
        if importlib.util.find_spec(name) is not None:
            modules.append(importlib.import_module(name))
    return modules


def _exported(module: ModuleType, base: type) -> list[type]:
    objs = (getattr(module, name) for name in getattr(module, "__all__", ()))
    return [obj for obj in objs if isinstance(obj, type) and issubclass(obj, base)]


def register_configs() -> None:
    """Register every family's configs with `AutoConfig` (imports configuration files only)."""
    from transformers import AutoConfig, PretrainedConfig

    for module in _family_modules("configuration"):
        for config_cls in _exported(module, PretrainedConfig):
            AutoConfig.register(config_cls.model_type, config_cls, exist_ok=True)


def register_model(model_cls: type) -> None:
    """Register one `PreTrainedModel` subclass (and its config) with `AutoConfig` and `AutoModel`."""
    from transformers import AutoConfig, AutoModel

    config_cls = model_cls.config_class
    AutoConfig.register(config_cls.model_type, config_cls, exist_ok=True)
    AutoModel.register(config_cls, model_cls, exist_ok=True)


def register_auto_classes() -> None:
    """Register every family's configs and models with the Auto classes (idempotent)."""
    from transformers import PreTrainedModel

    register_configs()
    for module in _family_modules("modeling"):
        for model_cls in _exported(module, PreTrainedModel):
            register_model(model_cls)


_UTILS = "transformers.modeling_utils"
_finished: set[str] = set()  # watched modules whose loader has run
_done: set[str] = set()


def _loaded(name: str) -> bool:
    """Whether module `name` has finished executing."""
    if name in _finished:
        return True
    module = sys.modules.get(name)
    return module is not None and not getattr(module.__spec__, "_initializing", False)


def _transformers_busy() -> bool:
    """Whether some transformers module is half-imported. Registering imports our families' files, which import
    transformers modules (e.g. DINOv2's) that may need the half-imported one: `from transformers import
    T5EncoderModel` loads `modeling_layers`, which loads `AutoModel` before it has defined what DINOv2 imports."""
    return any(
        getattr(getattr(module, "__spec__", None), "_initializing", False) and name not in _finished
        for name, module in list(sys.modules.items())
        if name == "transformers" or name.startswith("transformers.")
    )


def _sync() -> None:
    """Register what transformers is ready for: configs once `AutoConfig` is loaded, models once
    `AutoModel` and `PreTrainedModel` are, and only while no transformers module is half-imported (the hook
    calls this again as each one finishes)."""
    if len(_done) == 2 or _transformers_busy():
        return
    if "configs" not in _done and _loaded(_CONFIG_AUTO):
        _done.add("configs")
        register_configs()
    if "models" not in _done and _loaded(_MODEL_AUTO):
        if _UTILS not in sys.modules:
            importlib.import_module(_UTILS)  # AutoModel needs it anyway; its loader calls _sync again
        elif _loaded(_UTILS):
            _done.add("models")
            register_auto_classes()


class _ThenRegister(importlib.abc.Loader):
    """Wraps the loader of a watched transformers module: run it, then register what is ready."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec):  # noqa: ANN001 - importlib protocol
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        _finished.add(module.__name__)
        _sync()


class _AutoRegistrationFinder(importlib.abc.MetaPathFinder):
    """Wraps the loader of every transformers module until both registrations are done."""

    def find_spec(self, fullname: str, path, target=None):  # noqa: ANN001 - importlib protocol
        if len(_done) == 2 or not (fullname == "transformers" or fullname.startswith("transformers.")):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenRegister(spec.loader)
        return spec


def install_import_hook() -> None:
    """Register now what transformers has loaded, and the rest right after it loads."""
    if not any(isinstance(f, _AutoRegistrationFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AutoRegistrationFinder())
    _sync()
