"""One inference base for every family, in the manner of diffusers' ``DiffusionPipeline``.

A family pipeline declares its networks once::

    class SDFPipeline(LatentPipeline):
        family = "smoke"
        component_classes = {"net": SDFNet}

and gets, from this base:

* ``from_pretrained(run_or_folder, device=...)``: each component from ``<run>/models/<name>`` (or a
  folder written by :meth:`save_pretrained`, or, for a one-network pipeline, that network's own
  folder), loaded through :func:`latent4d.trust.load_network` (safetensors only, config checked
  against the weights before anything is allocated); optional components may be absent;
* ``save_pretrained(folder)``: every component's ``save_pretrained`` into ``folder/<name>`` plus a
  ``pipeline.json`` naming the pipeline class and its components, written as a whole folder;
* ``register_modules`` / ``components`` (the registered instances) / ``to(device, dtype)`` / ``device``.

Subclasses keep their own ``__init__(self, <components>..., **options)`` (they call
:meth:`register_modules`) and may override :meth:`component_folder` to pick e.g. an EMA copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch

from latent4d.errors import ConfigError

PIPELINE_FILE = "pipeline.json"


def load_component(cls: type, folder: str | Path, limits: dict[str, tuple[int, int]] | None = None) -> Any:
    """A network (``ModelMixin``) or a scheduler (``SchedulerMixin``) from its save_pretrained folder,
    checked as untrusted data (:mod:`latent4d.trust`)."""
    from diffusers import SchedulerMixin

    from latent4d.trust import load_network, load_scheduler

    if issubclass(cls, SchedulerMixin):
        return load_scheduler(cls, folder)
    return load_network(cls, folder, limits=limits)


class LatentPipeline:
    """Base class of the families' inference pipelines (see the module docstring)."""

    #: the family whose runs this pipeline loads
    family: ClassVar[str] = ""
    #: component name -> class, in load order (the names of ``<run>/models/<name>``)
    component_classes: ClassVar[dict[str, type]] = {}
    #: components that may be missing from a run (passed as None)
    optional: ClassVar[tuple[str, ...]] = ()
    #: size limits checked in a component's config.json before it is built (name -> {key: (lo, hi)})
    limits: ClassVar[dict[str, dict[str, tuple[int, int]]]] = {}

    # -- components ------------------------------------------------------------------------------
    def register_modules(self, **modules: Any) -> None:
        """Set each component as an attribute and remember its name (diffusers' contract)."""
        names = list(getattr(self, "_component_names", []))
        for name, module in modules.items():
            setattr(self, name, module)
            if name not in names:
                names.append(name)
        self._component_names = names

    @property
    def components(self) -> dict[str, Any]:
        """``{name: component}`` of the registered components that are present."""
        return {n: getattr(self, n) for n in getattr(self, "_component_names", []) if getattr(self, n) is not None}

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None):
        """Move every network component (floating-point weights to ``dtype``); returns self."""
        for module in self.components.values():
            if isinstance(module, torch.nn.Module):
                kw: dict[str, Any] = {"device": device} if dtype is None else {"device": device, "dtype": dtype}
                module.to(**kw)
        if device is not None:
            self._device = torch.device(device)
        return self

    @property
    def device(self) -> torch.device:
        for module in self.components.values():
            if isinstance(module, torch.nn.Module):
                p = next(module.parameters(), None)
                if p is not None:
                    return p.device
        return getattr(self, "_device", torch.device("cpu"))

    # -- loading ---------------------------------------------------------------------------------
    @classmethod
    def component_folder(cls, run_or_folder: str | Path, name: str) -> Path | None:
        """Folder of component ``name`` under ``run_or_folder`` (None when it is optional and absent)."""
        from latent4d.runs import network_folder

        comp_cls = cls.component_classes[name]
        try:
            return network_folder(run_or_folder, name, comp_cls.__name__, cls.family or "latent4d")
        except ConfigError:
            if name in cls.optional:
                return None
            raise

    @classmethod
    def load_components(cls, run_or_folder: str | Path, names: list[str] | None = None) -> dict[str, Any]:
        """``{name: component or None}`` loaded from a run directory or a pipeline folder."""
        out: dict[str, Any] = {}
        for name in names or list(cls.component_classes):
            folder = cls.component_folder(run_or_folder, name)
            out[name] = None if folder is None else load_component(cls.component_classes[name], folder,
                                                                    cls.limits.get(name))
        return out

    @classmethod
    def from_pretrained(cls, run_or_folder: str | Path, device: str | torch.device = "cpu", **options: Any):
        """Load every component from ``run_or_folder`` and build the pipeline (``options`` go to ``__init__``)."""
        if run_or_folder is None or str(run_or_folder) in ("", "None"):
            raise ConfigError(f"{cls.__name__} needs a {cls.family or 'latent4d'} run directory or a saved "
                              "pipeline folder")
        pipe = cls(**cls.load_components(run_or_folder), **options)
        return pipe.to(device)

    # -- saving ----------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path) -> Path:
        """Write every component to ``folder/<name>`` and ``folder/pipeline.json``, as a whole folder
        (an earlier save is replaced only when the new one is complete)."""
        from latent4d.fileio import atomic_dir, write_json_atomic

        folder = Path(folder)
        with atomic_dir(folder, marker=PIPELINE_FILE) as tmp:
            for name, module in self.components.items():
                if hasattr(module, "save_pretrained"):
                    module.save_pretrained(tmp / name)
            write_json_atomic(tmp / PIPELINE_FILE, {
                "_class_name": type(self).__name__, "family": self.family,
                "components": {n: type(m).__name__ for n, m in self.components.items()
                               if hasattr(m, "save_pretrained")}})
        return folder
