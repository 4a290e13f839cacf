"""Where the Hydra configs live, what they offer, and clear errors for unknown choices."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from latent4d.errors import ConfigError

FAMILIES = ("smoke", "hair", "objects", "motion", "binary")
GROUPS = ("data", "model", "trainer", "logger", "callbacks", "paths", "experiment")


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


def load_run_config(run: str | Path):
    """The resolved training config saved in a run directory (``<run>/config.yaml``)."""
    from omegaconf import OmegaConf

    from omegaconf import DictConfig

    p = find_run_dir(run)
    path = p / "config.yaml"
    try:
        cfg = OmegaConf.load(path)
    except Exception as e:  # noqa: BLE001 - yaml / omegaconf / decoding errors: the file is garbage
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ConfigError(f"run config '{path}' is not a readable YAML config ({first}); the run folder is "
                          "damaged: it is written by `latent4d train`") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"run config '{path}' does not hold a mapping of settings")
    family = OmegaConf.to_container(cfg, resolve=False).get("family")
    if family not in FAMILIES:
        raise ConfigError(f"run config '{path}': family {family!r} is not a latent4d family "
                          f"({', '.join(FAMILIES)}); the run folder is damaged or not a latent4d run")
    return cfg
