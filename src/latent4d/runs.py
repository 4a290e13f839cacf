"""One run layout: where a run's config and networks are, for every family.

A run directory (written by ``latent4d train``)::

    <run>/config.yaml            resolved training config (family, name, data, model, ...)
    <run>/checkpoints/*.ckpt     Lightning checkpoints
    <run>/models/<name>/         one save_pretrained folder per network (config.json + safetensors)

A network can be given as the run directory, its ``models/`` folder, or the network's own
``save_pretrained`` folder; :func:`network_folder` finds it in that order and checks, when a class
name is expected, that the folder holds that class. Nothing here imports a family package or
calls anything named in a run folder (see :mod:`latent4d.trust` for loading).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latent4d.errors import ConfigError

#: the folder of a run that holds its exported networks
MODELS = "models"


def _class_name(folder: Path) -> str | None:
    for name in ("config.json", "scheduler_config.json"):
        p = folder / name
        if p.is_file():
            try:
                data = json.loads(p.read_text())
            except (UnicodeDecodeError, ValueError):
                return None  # the loader names the damage
            return data.get("_class_name") if isinstance(data, dict) else None
    return None


def _is_network(folder: Path) -> bool:
    return (folder / "config.json").is_file() or (folder / "scheduler_config.json").is_file()


def network_candidates(path: Path, name: str) -> list[Path]:
    """Where network ``name`` may be, given a run directory, a models folder or a network folder."""
    return [path / MODELS / name, path / name, path]


def network_folder(path: str | Path, name: str, class_name: str | None = None, family: str = "latent4d") -> Path:
    """The ``save_pretrained`` folder of network ``name`` (``<run>/models/<name>``, ``<path>/<name>``
    or ``path`` itself); with ``class_name``, the first candidate whose config names that class.

    Raises :class:`ConfigError` naming the path and the layout expected when none is found.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"'{p}' does not exist: expected a {family} run directory (with {MODELS}/{name}/) or "
                          "a save_pretrained folder")
    other = []
    for cand in network_candidates(p, name):
        if _is_network(cand):
            found = _class_name(cand)
            if class_name is None or found in (None, class_name):
                return cand
            other.append(f"'{cand}' holds a {found}")
    if other:
        raise ConfigError(f"no '{name}' network ({class_name}) in '{p}': {'; '.join(other)}, not a {class_name}")
    raise ConfigError(f"no exported '{name}' network in '{p}' (expected {p}/{MODELS}/{name}/config.json); runs "
                      "export their networks when training finishes, or with `latent4d export run=<run>`")


def has_network(path: str | Path, name: str, class_name: str | None = None) -> bool:
    """Whether :func:`network_folder` would find ``name`` under ``path``."""
    try:
        network_folder(path, name, class_name)
    except ConfigError:
        return False
    return True


def run_of(folder: str | Path) -> Path | None:
    """The run directory a network folder belongs to (``<run>/models/<name>``), else None."""
    p = Path(folder).expanduser().resolve()
    for cand in (p, p.parent, p.parent.parent):
        if (cand / "config.yaml").is_file():
            return cand
    return None


def latest_run(root: str | Path, network: str, hint: str) -> Path:
    """The most recently exported run under ``root`` that holds ``models/<network>``."""
    root = Path(root)
    runs = sorted((p.parent.parent.parent for p in root.glob(f"**/{MODELS}/{network}/config.json")),
                  key=lambda p: p.stat().st_mtime)
    if not runs:
        raise ConfigError(f"no trained run with a '{network}' network under '{root}': {hint}")
    return runs[-1]


@dataclass
class Run:
    """A run directory and its config (read as untrusted data: see :func:`latent4d.config.load_run_config`)."""

    dir: Path
    config: Any

    @classmethod
    def open(cls, path: str | Path, family: str | None = None) -> Run:
        """Open ``path`` as a run directory; with ``family``, the run must belong to it."""
        from latent4d.config import load_run_config

        cfg = load_run_config(path)
        if family is not None and cfg.family != family:
            raise ConfigError(f"'{path}' is a {cfg.family} run ({cfg.family}/{cfg.get('name')}), not a {family} run")
        return cls(Path(path).expanduser(), cfg)

    @property
    def family(self) -> str:
        return str(self.config.family)

    @property
    def name(self) -> str:
        return str(self.config.get("name", ""))

    @property
    def models(self) -> Path:
        return self.dir / MODELS

    def network(self, name: str, class_name: str | None = None) -> Path:
        return network_folder(self.dir, name, class_name, self.family)


def run_family(path: str | Path) -> str | None:
    """The family of a run directory (its config.yaml) or of a folder of saved networks, else None.

    Network folders are recognised by the class names in their config.json (``StrandVAE`` -> hair,
    ``ShapeDecoder`` -> objects, ...). A damaged config.yaml raises :class:`ConfigError`.
    """
    from latent4d.config import FAMILIES, read_yaml

    p = Path(path).expanduser()
    for cfg in (p / "config.yaml", p / ".hydra" / "config.yaml"):
        if cfg.is_file():
            node = read_yaml(cfg)
            fam = node.get("family") if isinstance(node, dict) else None
            if fam is None:
                continue
            if not isinstance(fam, str) or fam not in FAMILIES:
                raise ConfigError(f"{cfg}: family {fam!r} is not a latent4d family ({', '.join(FAMILIES)}); the "
                                  "run folder is damaged or not a latent4d run")
            return fam
    for folder in (p / MODELS, p):
        if not folder.is_dir():
            continue
        for sub in sorted(folder.iterdir()):
            if not (sub.is_dir() and (sub / "config.json").is_file()):
                continue
            try:
                data = json.loads((sub / "config.json").read_text())
            except (UnicodeDecodeError, ValueError) as e:
                raise ConfigError(f"network config '{sub / 'config.json'}' is not valid JSON ({e}); the folder is "
                                  "damaged: re-export it with `latent4d export run=<run>`") from None
            fam = NETWORK_FAMILY.get(data.get("_class_name") or "") if isinstance(data, dict) else None
            if fam:
                return fam
    return None


#: which family a saved network class belongs to (for folders of networks without a run config)
NETWORK_FAMILY = {"StrandVAE": "hair", "HairstyleVAE": "hair", "ShapeDecoder": "objects", "AppearanceNet": "objects",
                  "LatentDatabase": "objects", "ObjectDetector": "objects", "ShapeVecSetAE": "motion",
                  "DeformVecSetAE": "motion",
                  "ShapeDenoiser": "motion", "DeformDenoiser": "motion", "BernoulliAutoencoder": "binary",
                  "LatentTransformer": "binary", "SDFNet": "smoke"}
