"""Loading files a user may have downloaded: they are data, never code.

* :func:`load_checkpoint` reads a PyTorch / Lightning checkpoint with ``weights_only=True``: only
  tensors, numbers, strings and plain containers are rebuilt; a pickle that names any other callable
  (``os.system``, ``builtins.exec``, a class's ``__reduce__``) is refused before it is called.
* :func:`check_targets` walks a config read from a run folder and refuses every Hydra ``_target_``
  that is not a latent4d class of the run's family (or a shared latent4d / diffusers scheduler class),
  **before** anything is imported from it or called. :func:`instantiate_from_run` is the one way to
  build objects from a run folder's ``config.yaml``.
* :func:`load_state_checked` loads a checkpoint's weights into a module and names missing /
  unexpected / mis-shaped tensors (a checkpoint from another experiment) instead of a traceback.
* :func:`load_network` loads a ``save_pretrained`` folder (config.json + safetensors) after checking
  the JSON, the class name and the safetensors header; pickled ``.bin`` weights are refused.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from latent4d.errors import ConfigError, InputError

#: shared latent4d packages any family's configs may name (classes only)
SHARED_PACKAGES = ("latent4d.diffusion", "latent4d.nn")
#: third-party classes a run's model config may name (schedulers: pure configuration objects)
THIRD_PARTY_CLASSES = frozenset({
    "diffusers.DDPMScheduler", "diffusers.DDIMScheduler", "diffusers.EulerDiscreteScheduler",
    "diffusers.EDMEulerScheduler", "diffusers.DPMSolverMultistepScheduler",
    "diffusers.schedulers.DDPMScheduler", "diffusers.schedulers.DDIMScheduler",
})
_HYDRA_KEYS = frozenset({"_target_", "_partial_", "_convert_", "_recursive_", "_args_"})


# ----------------------------------------------------------------------------------------------
# checkpoints


def load_checkpoint(path: str | Path, *, what: str = "checkpoint") -> dict:
    """Read a checkpoint file without executing anything from it.

    Returns the top-level dict. Raises :class:`InputError` naming the file when it is missing,
    empty, truncated, not a PyTorch file, not a dict, or when its pickle refers to anything but
    tensors and plain containers (``weights_only=True`` refuses it before calling it).
    """
    import pickle

    import torch

    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"{what} '{p}' does not exist (or is not a file)")
    if p.stat().st_size == 0:
        raise InputError(f"{what} '{p}' is empty (0 bytes); the download or the save was interrupted")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(
            f"{what} '{p}' refers to Python objects other than tensors and plain containers "
            f"({first[:200]}). latent4d never unpickles code from files: re-save it as a plain state dict "
            "(torch.save({'state_dict': model.state_dict()}, path)) or as safetensors.") from None
    except Exception as e:  # noqa: BLE001 - any other failure means a corrupt or foreign file
        raise InputError(f"{what} '{p}' is corrupted, truncated or not a PyTorch file "
                         f"({type(e).__name__}: {str(e).strip()[:200]})") from None
    if not isinstance(obj, dict):
        raise InputError(f"{what} '{p}' holds a {type(obj).__name__}, expected a dict of tensors")
    return obj


def check_lightning_checkpoint(path: str | Path) -> dict:
    """:func:`load_checkpoint` + the checkpoint must be a Lightning one (a ``state_dict`` entry)."""
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt.get("state_dict"), dict):
        raise InputError(f"checkpoint '{path}' is not a Lightning checkpoint (no 'state_dict' entry); "
                         "latent4d resumes and exports from <run>/checkpoints/{last,best-*}.ckpt")
    return ckpt


def load_state_checked(module, state: dict, source: str | Path) -> None:
    """``module.load_state_dict(state)`` with one clear error listing what does not match.

    A checkpoint from another experiment (or another model size) has missing, unexpected or
    mis-shaped tensors: the error names a few of each and the likely cause.
    """
    import torch

    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and isinstance(state[k], torch.Tensor) and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)):
            if items:
                parts.append(f"{len(items)} {label} ({', '.join(items[:3])}{', ...' if len(items) > 3 else ''})")
        raise InputError(f"checkpoint '{source}' does not fit this model ({type(module).__name__}): "
                         + "; ".join(parts) + ". It was probably written by another experiment or model size: "
                         "use a checkpoint of this run, or train with the same experiment and model settings.")
    module.load_state_dict(state)


# ----------------------------------------------------------------------------------------------
# config targets


def _allowed_module(module: str, family: str) -> bool:
    prefixes = (f"latent4d.{family}", *SHARED_PACKAGES)
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def check_target(target: Any, family: str, where: str = "config") -> None:
    """Refuse a ``_target_`` that is not a latent4d class of ``family`` (checked before calling it)."""
    if not isinstance(target, str) or not target or any(c in target for c in " /\\:()[]"):
        raise ConfigError(f"{where}: _target_ {target!r} is not a class path")
    if target in THIRD_PARTY_CLASSES:
        return
    module, _, name = target.rpartition(".")
    if not module or not _allowed_module(module, family):
        raise ConfigError(
            f"{where}: refusing _target_ '{target}': a run folder's config may only name latent4d classes of "
            f"its family ('latent4d.{family}.*', {', '.join(SHARED_PACKAGES)}). Run folders are data: "
            "latent4d does not call arbitrary functions named in them.")
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{where}: refusing _target_ '{target}': no module '{module}' in this latent4d") from None
    obj = getattr(mod, name, None)
    if not isinstance(obj, type) or not _allowed_module(getattr(obj, "__module__", ""), family):
        raise ConfigError(f"{where}: refusing _target_ '{target}': it is not a class defined in latent4d.{family} "
                          "(run folders may only name the family's classes)")


def check_targets(node: Any, family: str, where: str = "config") -> None:
    """Walk a config (DictConfig / dict / list) and :func:`check_target` every ``_target_``."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    from latent4d.config import FAMILIES

    if family not in FAMILIES:
        raise ConfigError(f"{where}: family {family!r} is not a latent4d family ({', '.join(FAMILIES)})")
    if isinstance(node, DictConfig | ListConfig):
        node = OmegaConf.to_container(node, resolve=False)
    stack: list[tuple[str, Any]] = [(where, node)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict):
            if "_target_" in item:
                check_target(item["_target_"], family, path)
            stack.extend((f"{path}.{k}", v) for k, v in item.items() if k not in _HYDRA_KEYS)
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(item))


def instantiate_from_run(node: Any, family: str, where: str = "config", **kwargs: Any) -> Any:
    """Hydra ``instantiate`` of a config read from a run folder, after :func:`check_targets`.

    Errors raised by the constructors (bad values in the config) become one :class:`ConfigError`.
    """
    from hydra.errors import HydraException, InstantiationException
    from hydra.utils import instantiate

    from latent4d.errors import Latent4DError

    check_targets(node, family, where)
    try:
        return instantiate(node, **kwargs)
    except (InstantiationException, HydraException) as e:
        cause = e.__cause__
        while isinstance(cause, InstantiationException | HydraException) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, Latent4DError):
            raise cause from None
        msg = str(cause or e).strip().splitlines()[0][:300]
        raise ConfigError(f"{where}: cannot build it from the run's config.yaml ({msg}); the run folder "
                          "is damaged or from another latent4d version") from None
    except Latent4DError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise ConfigError(f"{where}: cannot build it from the run's config.yaml ({type(e).__name__}: "
                          f"{str(e)[:300]})") from None


# ----------------------------------------------------------------------------------------------
# save_pretrained folders


def read_json_config(path: str | Path, what: str = "network config") -> dict:
    """A JSON object from ``path`` (a saved network's or scheduler's config); :class:`InputError`
    naming the file when it is not valid JSON or not an object."""
    p = Path(path)
    try:
        cfg = json.loads(p.read_text())
    except (UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{what} '{p}' is not valid JSON ({e}); the folder is damaged: re-export it "
                         "with `latent4d export run=<run>`") from None
    if not isinstance(cfg, dict):
        raise InputError(f"{what} '{p}' holds a {type(cfg).__name__}, expected a JSON object")
    return cfg


def read_model_config(folder: str | Path) -> dict:
    """``<folder>/config.json`` as a dict; :class:`InputError` naming the file when it is not."""
    p = Path(folder) / "config.json"
    if not p.is_file():
        raise InputError(f"'{folder}' is not a saved network: {p.name} is missing (written by save_pretrained)")
    return read_json_config(p)


def check_safetensors(path: str | Path) -> None:
    """Check a safetensors file's header and sizes without loading it (empty / truncated / garbage)."""
    from safetensors import safe_open

    p = Path(path)
    if p.stat().st_size < 8:
        raise InputError(f"weights file '{p}' is empty or truncated ({p.stat().st_size} bytes)")
    try:
        with safe_open(str(p), framework="pt") as f:
            list(f.keys())
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
        raise InputError(f"weights file '{p}' is not a valid safetensors file ({str(e).strip()[:200]}); "
                         "the download or export was interrupted: re-export or re-download it") from None


def _short(v: Any) -> str:
    text = json.dumps(v)
    return text if len(text) <= 60 else text[:57] + "..."


def check_network_config(cls, folder: str | Path, limits: dict[str, tuple[int, int]] | None = None) -> None:
    """Check ``folder/config.json`` against its weights before anything sized by it is allocated.

    ``limits`` (name -> (min, max); lists checked element-wise, at most 16 long): size settings that
    must be integers in range. Every number must be finite. Then the network is built on PyTorch's
    ``meta`` device (no memory) and each tensor's shape is compared with the safetensors header, so a
    config.json that does not belong to its weights (or asks for gigabytes) is refused first.
    Raises :class:`InputError` naming the file.
    """
    import math

    import torch
    from safetensors import safe_open

    folder = Path(folder)
    cfg = read_model_config(folder)
    where = folder / "config.json"
    for key, (lo, hi) in (limits or {}).items():
        if key not in cfg:
            continue
        v = cfg[key]
        vals = v if isinstance(v, list) and 0 < len(v) <= 16 else [v]
        if not all(isinstance(x, int) and not isinstance(x, bool) and lo <= x <= hi for x in vals):
            raise InputError(f"network config '{where}': {key}={_short(v)} is not valid for a {cls.__name__} "
                             f"(integers in [{lo}, {hi}] expected); the file is damaged: re-export the run")
    stack: list[Any] = [cfg]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise InputError(f"network config '{where}' holds a NaN or infinite number; the file is damaged")
    weights = sorted(folder.glob("diffusion_pytorch_model*.safetensors"))  # what diffusers loads
    if not weights:
        return  # load_network names what is missing
    stored: dict[str, tuple[int, ...]] = {}
    for w in weights:
        check_safetensors(w)
        with safe_open(str(w), framework="pt") as f:
            for k in f.keys():
                stored[k] = tuple(f.get_slice(k).get_shape())
    try:
        with torch.device("meta"):
            own = {k: tuple(t.shape) for k, t in cls.from_config(cfg).state_dict().items()}
    except Exception as e:  # noqa: BLE001 - constructors raise many kinds for bad settings
        raise InputError(f"network config '{where}': a {cls.__name__} cannot be built from it ({type(e).__name__}: "
                         f"{str(e).strip()[:200]}); the file is damaged: re-export the run") from None
    bad = [f"{k} {stored.get(k, 'missing')} vs {v}" for k, v in own.items() if stored.get(k) != v]
    if bad:
        raise InputError(f"'{folder}': config.json and the weights do not belong together ({len(bad)} tensors "
                         f"differ, e.g. {'; '.join(bad[:2])}); re-export the run")


def load_network(cls, folder: str | Path, limits: dict[str, tuple[int, int]] | None = None, **kwargs: Any):
    """``cls.from_pretrained(folder)`` for a folder that may come from anyone.

    Checks, before loading: config.json is a JSON object whose ``_class_name`` (when present) is
    ``cls``'s; the weights are safetensors (pickled ``.bin`` weights are refused) with a valid
    header whose tensor shapes match the network the config builds (:func:`check_network_config`,
    with optional size ``limits``). Any remaining failure is one :class:`InputError`.
    """
    folder = Path(folder)
    cfg = read_model_config(folder)
    name = cfg.get("_class_name")
    if name is not None and name != cls.__name__:
        raise InputError(f"'{folder}' holds a {name}, not a {cls.__name__}: point to the {cls.__name__} folder")
    weights = sorted(folder.glob("diffusion_pytorch_model*.safetensors"))
    if not weights:
        pickled = sorted(p.name for p in folder.glob("*.bin"))
        extra = (f" ({', '.join(pickled)} is pickled and is never loaded: convert it to safetensors)"
                 if pickled else "")
        raise InputError(f"'{folder}' has no diffusion_pytorch_model.safetensors weights{extra}")
    check_network_config(cls, folder, limits)
    kwargs.setdefault("low_cpu_mem_usage", False)
    try:
        return cls.from_pretrained(folder, use_safetensors=True, **kwargs)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - diffusers raises many kinds for a damaged folder
        raise InputError(f"cannot load {cls.__name__} from '{folder}' ({type(e).__name__}: "
                         f"{str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}); the folder is "
                         "damaged or was written by another model size or version") from None


def load_scheduler(cls, folder: str | Path, check_class: bool = True, **kwargs: Any):
    """``cls.from_pretrained(folder)`` of a diffusers-style scheduler folder after checking its
    ``scheduler_config.json`` (a pure configuration object: nothing in it is executed)."""
    folder = Path(folder)
    cfg_path = folder / "scheduler_config.json"
    if not cfg_path.is_file():
        raise ConfigError(f"no exported scheduler in '{folder}' (expected {cfg_path.name})")
    name = read_json_config(cfg_path, "scheduler config").get("_class_name")
    if check_class and name is not None and name != cls.__name__:
        raise InputError(f"'{folder}' holds a {name}, not a {cls.__name__}")
    try:
        return cls.from_pretrained(folder, **kwargs)
    except Exception as e:  # noqa: BLE001 - bad values in the config
        raise InputError(f"cannot load the scheduler from '{cfg_path}' ({type(e).__name__}: {str(e)[:200]}); "
                         "the run folder is damaged") from None
