"""Where the Hydra configs live, what they offer, and clear errors for unknown choices."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from latent4d.errors import ConfigError

FAMILIES = ("smoke", "hair", "objects", "motion", "binary")
GROUPS = ("data", "model", "trainer", "logger", "callbacks", "paths", "experiment", "preset")


def conf_dir() -> Path:
    """Absolute path of the installed ``conf/`` folder (independent of the caller's cwd)."""
    import latent4d.conf as conf_pkg

    return Path(conf_pkg.__file__).resolve().parent


def group_options(group: str) -> list[str]:
    """Option names of a config group (``experiment`` options are ``family/name``)."""
    root = conf_dir() / group
    if not root.is_dir():
        return []
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def _description(path: Path) -> str:
    for line in path.read_text().splitlines():
        s = line.strip()
        if not s.startswith("#"):
            if s:
                break
            continue
        text = s.lstrip("#").strip()
        if text and not text.startswith("@package"):
            return text
    return ""


def list_experiments() -> list[tuple[str, str]]:
    """``[(family/name, one-line description)]`` for every experiment config."""
    root = conf_dir() / "experiment"
    return [(name, _description(root / f"{name}.yaml")) for name in group_options("experiment")]


def _close(word: str, choices: list[str]) -> str:
    hits = difflib.get_close_matches(word, choices, n=1)
    return f" Did you mean '{hits[0]}'?" if hits else ""


_OVERRIDE = re.compile(r"^([+~]{0,2})([\w./-]+?)(@[\w.]+)?=(.*)$")


def validate_overrides(overrides: list[str]) -> None:
    """Reject unknown config-group options before Hydra runs (one clear paragraph, no stack trace)."""
    for ov in overrides:
        m = _OVERRIDE.match(ov)
        if not m:
            continue
        key, value = m.group(2), m.group(4)
        if key.startswith("hydra"):
            continue
        if key in GROUPS and value not in ("null", ""):
            choices = group_options(key)
            if value not in choices:
                raise ConfigError(
                    f"Unknown {key} '{value}'.{_close(value, choices)} Valid choices for {key}=: "
                    + ", ".join(choices) + ". (`latent4d list` describes the experiments.)")


def find_run_dir(run: str | Path | None) -> Path:
    """Check that ``run`` is a latent4d run directory (has config.yaml) and return it."""
    if run is None or str(run) in ("", "None", "null"):
        raise ConfigError("this command needs run=<run directory> (a folder written by `latent4d train`, "
                          "e.g. outputs/<family>/<name>/<time>).")
    p = Path(run).expanduser()
    if not p.is_dir():
        raise ConfigError(f"run directory '{p}' does not exist. Runs are written by `latent4d train` "
                          "under outputs/<family>/<name>/<time>.")
    if not (p / "config.yaml").is_file():
        raise ConfigError(f"'{p}' is not a latent4d run directory: config.yaml is missing "
                          "(it is written by `latent4d train`).")
    return p


#: a run's config.yaml is a few kB; anything this large is not one
MAX_RUN_CONFIG_BYTES = 4 * 1024 * 1024


def _no_alias_loader():
    """A YAML SafeLoader that refuses aliases (``*name``): a few hundred bytes of nested aliases expand
    to billions of nodes (a "billion laughs" file); latent4d never writes them."""
    import yaml

    class Loader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(f"YAML aliases (*name) are not allowed (line {mark.line + 1})")
            return super().compose_node(parent, index)

    return Loader


def read_yaml(path: str | Path, max_bytes: int = MAX_RUN_CONFIG_BYTES):
    """Plain data from a YAML file that may come from anyone: size-limited, safe (no Python tags), no
    aliases. Raises :class:`ConfigError` naming the file when it is not readable YAML."""
    import yaml

    p = Path(path)
    size = p.stat().st_size
    if size > max_bytes:
        raise ConfigError(f"'{p}': {size} bytes is too large for a latent4d config (at most {max_bytes}); "
                          "the run folder is damaged")
    try:
        return yaml.load(p.read_bytes().decode("utf-8"), Loader=_no_alias_loader())
    except (UnicodeDecodeError, ValueError, RecursionError, yaml.YAMLError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ConfigError(f"run config '{p}' is not a readable YAML config ({first}); the run folder is "
                          "damaged: it is written by `latent4d train`") from None


def load_run_config(run: str | Path):
    """The resolved training config saved in a run directory (``<run>/config.yaml``).

    Read as untrusted data (:func:`read_yaml`); it must be a mapping whose ``family`` is a latent4d
    family. Nothing named in it is imported or called here (see :mod:`latent4d.trust`).
    """
    from omegaconf import DictConfig, OmegaConf

    p = find_run_dir(run)
    path = p / "config.yaml"
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"run config '{path}' does not hold a mapping of settings")
    try:
        cfg = OmegaConf.create(data)
    except Exception as e:  # noqa: BLE001 - keys OmegaConf cannot hold
        raise ConfigError(f"run config '{path}' is not a valid config ({str(e).strip().splitlines()[0][:200]})") from None
    family = data.get("family")
    if not isinstance(cfg, DictConfig) or family not in FAMILIES:
        raise ConfigError(f"run config '{path}': family {family!r} is not a latent4d family "
                          f"({', '.join(FAMILIES)}); the run folder is damaged or not a latent4d run")
    return cfg


def _simple_type(annotation) -> tuple[type, ...] | None:
    """(int,) / (float,) / (bool,) / (str,) (plus NoneType when Optional) for simple annotations."""
    import types
    import typing

    simple = (bool, int, float, str)
    if annotation in simple:
        return (annotation,)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and rest[0] in simple:
            return (rest[0], type(None))
    return None


def _value_ok(value, kinds: tuple[type, ...]) -> bool:
    if value is None:
        return type(None) in kinds
    if isinstance(value, bool):
        return bool in kinds or (str in kinds)
    if isinstance(value, int):
        return any(k in kinds for k in (int, float, str))
    if isinstance(value, float):
        return float in kinds or str in kinds
    if isinstance(value, str):
        return str in kinds
    return True


def check_value_types(node, where: str) -> None:
    """Compare the values of every ``_target_`` node under ``node`` with the constructor's annotations.

    Catches ``model.lr=abc`` (a string where the constructor declares ``lr: float``) before anything is
    built or trained, with a ConfigError naming the key. Only simple annotations (int, float, bool,
    str and their Optional) are checked; classes are located only for latent4d and Lightning targets
    (``_target_`` values of the composed training config, never of a downloaded run folder).
    """
    import inspect
    import typing

    from hydra.utils import get_class
    from omegaconf import DictConfig, ListConfig, OmegaConf

    container = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig | ListConfig) else node
    stack = [(where, container)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, list):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(item))
            continue
        if not isinstance(item, dict):
            continue
        stack.extend((f"{path}.{k!s}", v) for k, v in item.items() if not str(k).startswith("_"))
        target = item.get("_target_")
        if not isinstance(target, str) or not target.startswith(("latent4d.", "pytorch_lightning.")):
            continue
        try:
            cls = get_class(target)
            init = getattr(cls, "__init__")  # noqa: B009 - the class's constructor, not an instance's
            hints = typing.get_type_hints(init)
            params = inspect.signature(init).parameters
        except Exception:  # noqa: BLE001 - unresolvable annotations: leave it to the constructor
            continue
        for key, value in item.items():
            if str(key).startswith("_") or key not in params or key not in hints:
                continue
            kinds = _simple_type(hints[key])
            if kinds is not None and not _value_ok(value, kinds):
                names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
                raise ConfigError(f"{path}.{key}={value!r} is not valid: {target.rsplit('.', 1)[-1]} expects "
                                  f"{names}")
