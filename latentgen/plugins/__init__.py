"""The plugin system: hook specifications, the registry, the Modality base class, and the one
declaration of a value (a modality option or a training setting) with its check."""

from typing import TYPE_CHECKING

from latentgen._exports import lazy_exports

_EXPORTS = {
    "hookimpl": "latentgen.plugins.hookspecs",
    "Modality": "latentgen.plugins.modality",
    "Declaration": "latentgen.plugins.declare",
    "declarations": "latentgen.plugins.declare",
    "option": "latentgen.plugins.declare",
    "setting": "latentgen.plugins.declare",
    "get_registry": "latentgen.plugins.registry",
    "register_plugin": "latentgen.plugins.registry",
    "reset": "latentgen.plugins.registry",
    "unregister_plugin": "latentgen.plugins.registry",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)

if TYPE_CHECKING:
    from latentgen.plugins.declare import Declaration, declarations, option, setting
    from latentgen.plugins.hookspecs import hookimpl
    from latentgen.plugins.modality import Modality
    from latentgen.plugins.registry import get_registry, register_plugin, reset, unregister_plugin
