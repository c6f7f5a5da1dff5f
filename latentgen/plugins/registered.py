"""What the plugin registry holds: the registered modalities, priors, samplers, observers and
feature extractors by name, and what each plugin registered (``PluginInfo``). Built and
filled by ``latentgen.plugins.registry``; the checks a registration passes live in
``latentgen.plugins.admission``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from latentgen.errors import UserError

if TYPE_CHECKING:
    from latentgen.plugins.modality import Modality

@dataclass
class PluginInfo:
    name: str
    version: str
    modalities: list[str] = field(default_factory=list)
    priors: list[str] = field(default_factory=list)
    samplers: list[str] = field(default_factory=list)
    observers: list[str] = field(default_factory=list)
    extractors: list[str] = field(default_factory=list)
    error: str | None = None
    #: each modality's description, read once when it registered
    descriptions: dict[str, str] = field(default_factory=dict)


@dataclass
class Registry:
    modalities: dict[str, Modality] = field(default_factory=dict)
    priors: dict[str, Callable[..., Any]] = field(default_factory=dict)
    samplers: dict[str, Callable[..., Any]] = field(default_factory=dict)
    observers: dict[str, Callable[..., Any]] = field(default_factory=dict)
    extractors: dict[str, Callable[..., Any]] = field(default_factory=dict)
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    #: which plugin registered each modality
    owners: dict[str, str] = field(default_factory=dict)
    #: the built-in plugins, by name
    builtin: set[str] = field(default_factory=set)

    def modality(self, name: str) -> Modality:
        if name not in self.modalities:
            known = ", ".join(sorted(self.modalities)) or "none (see `latentgen plugins`)"
            raise UserError(f"unknown modality '{name}'; installed modalities: {known}")
        return self.modalities[name]

    def prior(self, name: str) -> Callable[..., Any]:
        if name not in self.priors:
            raise UserError(f"unknown prior '{name}'; available: {', '.join(sorted(self.priors))}")
        return self.priors[name]

    def sampler(self, name: str) -> Callable[..., Any]:
        if name not in self.samplers:
            raise UserError(f"unknown sampler '{name}'; available: "
                            f"{', '.join(sorted(self.samplers))}")
        return self.samplers[name]

    def extractor(self, name: str) -> Callable[..., Any]:
        if name not in self.extractors:
            raise UserError(f"unknown feature extractor '{name}'; available: "
                            f"{', '.join(sorted(self.extractors)) or 'none'}")
        return self.extractors[name]

    def observer(self, name: str) -> Callable[..., Any]:
        if name not in self.observers:
            known = ", ".join(sorted(self.observers))
            raise UserError(f"unknown observer '{name}'; available: {known}")
        return self.observers[name]
