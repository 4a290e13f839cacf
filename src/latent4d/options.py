"""One argument-validation layer for every command: typed options, ranges, unknown keys, output paths.

A command declares its ``key=value`` options as a dataclass; :func:`parse_options` merges the
user's options into it (OmegaConf structured config: types are converted and checked, unknown keys
refused) and checks the ranges / choices declared with :func:`opt`. Every failure is one
:class:`ConfigError` naming the command, the option, the value and what is expected, raised before
any compute starts::

    @dataclass
    class SampleOptions:
        run: str | None = None
        n: int = opt(4, min=1, max=10_000, help="number of samples")
        format: str = opt("data", choices=("data", "hair", "ply", "npz"))

    o = parse_options(SampleOptions, args, "sample")

:func:`check_output_file` and :func:`check_output_dir` check ``out=`` before the work, so a run
that would fail to write never computes for minutes first (and never overwrites what is not its own).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from pathlib import Path
from typing import Any, TypeVar

from latent4d.errors import ConfigError

T = TypeVar("T")


def opt(default: Any = dataclasses.MISSING, *, min: float | None = None, max: float | None = None,  # noqa: A002
        gt: float | None = None, choices: tuple | None = None, help: str = "",  # noqa: A002
        default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with a validated range (``min <= v <= max``, ``v > gt``) or choices."""
    meta: dict[str, Any] = {"min": min, "max": max, "gt": gt, "choices": choices, "help": help}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _close(word: str, choices) -> str:
    hits = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" Did you mean '{hits[0]}'?" if hits else ""


def _as_container(args: Any) -> dict:
    from omegaconf import DictConfig, OmegaConf

    if args is None:
        return {}
    if isinstance(args, DictConfig):
        return OmegaConf.to_container(args, resolve=False)  # type: ignore[return-value]
    if isinstance(args, dict):
        return dict(args)
    if isinstance(args, list | tuple):
        bad = [i for i in args if "=" not in str(i)]
        if bad:
            raise ConfigError(f"expected key=value options, got: {' '.join(map(str, bad))}")
        try:
            return OmegaConf.to_container(OmegaConf.from_dotlist([str(a) for a in args]))  # type: ignore[return-value]
        except Exception as e:  # noqa: BLE001 - OmegaConf / YAML grammar errors ('a..b=1', control characters)
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise ConfigError(f"cannot parse the options {' '.join(map(str, args))!r}: {first}") from None
    raise ConfigError(f"options must be key=value pairs, got {type(args).__name__}")


_TYPE_WORDS = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false", "String": "a string"}


def _explain(e: Exception, command: str, spec: type) -> ConfigError:
    """One line from an OmegaConf validation error."""
    key = getattr(e, "full_key", None) or ""
    msg = str(getattr(e, "msg", None) or e).strip().splitlines()[0]
    if "not in struct" in msg or "Key '" in msg and "not in" in msg:
        names = [f.name for f in dataclasses.fields(spec)]
        return ConfigError(f"{command}: unknown option '{key}'.{_close(key.split('.')[0], names)} "
                           f"Options: {', '.join(names)}.")
    m = re.search(r"Value '(.*)' of type '(\w+)' could not be converted to (\w+)", msg)
    if m:
        want = _TYPE_WORDS.get(m.group(3), m.group(3))
        return ConfigError(f"{command}: {key}={m.group(1)!s} is not valid: expected {want}")
    if "is not Optional" in msg or "non-optional" in msg.lower() or "Incompatible value 'None'" in msg:
        return ConfigError(f"{command}: {key} needs a value (null is not allowed)")
    return ConfigError(f"{command}: option {key or '?'}: {msg}")


def parse_options(spec: type[T], args: Any, command: str) -> T:
    """Options ``args`` (DictConfig, dict, ``key=value`` list or None) checked against ``spec``.

    Returns a ``spec`` instance. Raises :class:`ConfigError` for unknown keys (with a suggestion),
    values of the wrong type, values outside the declared ranges / choices, and whatever the spec's
    optional ``validate(self)`` method refuses.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    given = _as_container(args)
    names = [f.name for f in dataclasses.fields(spec)]  # type: ignore[arg-type]
    for k in given:
        if k not in names:
            raise ConfigError(f"{command}: unknown option '{k}'.{_close(k, names)} Options: {', '.join(names)}.")
    try:
        base = OmegaConf.structured(spec)
        merged = OmegaConf.merge(base, given)
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise _explain(e, command, spec) from None
    return _checked(obj, command)


def _checked(obj: Any, command: str) -> Any:
    """``obj`` after :func:`check_ranges` and its own ``validate()`` (when it has one)."""
    check_ranges(obj, command)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()
    return obj


def check_ranges(obj: Any, command: str) -> None:
    """Check every field's ``min`` / ``max`` / ``gt`` / ``choices`` metadata (see :func:`opt`)."""
    import math

    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        meta: Any = f.metadata or {}
        if v is None:
            continue
        choices = meta.get("choices")
        if choices is not None and v not in choices:
            raise ConfigError(f"{command}: {f.name}={v} is not one of {', '.join(map(str, choices))}."
                              f"{_close(v, choices)}")
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{command}: {f.name}={v} must be a finite number")
        lo, hi, gt = meta.get("min"), meta.get("max"), meta.get("gt")
        if lo is not None and v < lo:
            raise ConfigError(f"{command}: {f.name}={v} must be >= {lo}")
        if hi is not None and v > hi:
            raise ConfigError(f"{command}: {f.name}={v} must be <= {hi}")
        if gt is not None and not v > gt:
            raise ConfigError(f"{command}: {f.name}={v} must be > {gt}")


# ----------------------------------------------------------------------------------------------
# paths


def _nearest_existing(p: Path) -> Path:
    q = p
    while not q.exists() and q != q.parent:
        q = q.parent
    return q


def _check_creatable(p: Path, option: str) -> None:
    anc = _nearest_existing(p.parent)
    if anc.exists() and not anc.is_dir():
        raise ConfigError(f"{option}={p}: '{anc}' is a file, so no folder can be made under it")
    if anc.exists() and not os.access(anc, os.W_OK | os.X_OK):
        raise ConfigError(f"{option}={p}: '{anc}' is not writable")


def check_input_file(path: Any, option: str, suffixes: tuple[str, ...] | None = None) -> Path:
    """An existing, non-empty file (optionally with one of ``suffixes``); ConfigError otherwise."""
    if path in (None, ""):
        raise ConfigError(f"{option}=<file> is required")
    p = Path(str(path)).expanduser()
    if not p.exists():
        raise ConfigError(f"{option}={p}: no such file")
    if p.is_dir():
        raise ConfigError(f"{option}={p} is a folder; expected a file")
    if suffixes and p.suffix.lower() not in suffixes:
        raise ConfigError(f"{option}={p}: unsupported file type '{p.suffix}'; expected {', '.join(suffixes)}")
    return p


def check_output_file(path: Any, option: str = "out", suffixes: tuple[str, ...] | None = None) -> Path:
    """An output file path that can be written: not a folder, a known suffix, a creatable parent.

    An existing *file* is fine (it is replaced atomically when the new one is complete).
    """
    if path in (None, ""):
        raise ConfigError(f"{option}=<file> is required")
    p = Path(str(path)).expanduser()
    if p.is_dir():
        raise ConfigError(f"{option}={p} is a folder; give a file name (e.g. {p / ('result' + (suffixes or ('.ply',))[0])})")
    if suffixes and p.suffix.lower() not in suffixes:
        raise ConfigError(f"{option}={p}: unsupported output type '{p.suffix or '(none)'}'; use one of "
                          f"{', '.join(suffixes)}")
    _check_creatable(p, option)
    return p


def check_output_dir(path: Any, option: str = "out", marker: str | None = None) -> Path:
    """An output folder that can be written without destroying anything that is not ours.

    It must not be a file. If it exists and is not empty, it must hold ``marker`` (the file every
    output of this command writes, e.g. ``summary.json``): an earlier output of the same command,
    which the new one replaces whole once it is complete (see :func:`latent4d.fileio.atomic_dir`).
    """
    if path in (None, ""):
        raise ConfigError(f"{option}=<folder> is required")
    p = Path(str(path)).expanduser()
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{option}={p} is an existing file; give a folder name (e.g. {p.with_suffix('')}_out)")
    if marker is not None and p.is_dir() and any(p.iterdir()) and not (p / marker).exists():
        raise ConfigError(f"{option}={p} exists and is not an earlier output of this command (no {marker}); "
                          "latent4d will not replace a folder it did not write: choose a new or empty folder")
    _check_creatable(p, option)
    return p


# ----------------------------------------------------------------------------------------------
# settings composed by Hydra (conf/<group>/<name>.yaml over a dataclass schema)

_NEEDS_QUOTES = re.compile(r"[,\s=:'\"]|^$")


def _quote(override: str) -> str:
    """``key=value`` with the value quoted when Hydra's override grammar would misread it
    (``categories=1:mug,2:camera`` would be a sweep; a path with spaces a parse error)."""
    key, sep, value = override.partition("=")
    if not sep or value.startswith(("[", "{", "'", '"')) or not _NEEDS_QUOTES.search(value):
        return override
    return f"{key}='" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _hydra_error(e: Exception, schema: type, command: str) -> ConfigError:
    """One line from a Hydra composition error."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    names = [f.name for f in dataclasses.fields(schema)]
    m = re.match(r"Could not override '([^']+)'", msg)
    if m:
        key = m.group(1)
        return ConfigError(f"{command}: unknown option '{key}'.{_close(key.split('.')[0], names)} "
                           f"Options: {', '.join(names)}.")
    m = re.match(r"Error merging override (.+)", msg)
    cause = e.__cause__
    if m and isinstance(cause, Exception):
        inner = _explain(cause, command, schema)
        if "option ?" not in str(inner):
            return inner
        return ConfigError(f"{command}: {m.group(1)} is not valid ({str(cause).strip().splitlines()[0]})")
    return ConfigError(f"{command}: {msg}")


def compose_settings(config_name: str, schema: type[T], overrides: list[str], command: str) -> T:
    """Hydra-composed settings: ``conf/<config_name>.yaml`` (defaults) over ``schema`` (a dataclass
    registered as a structured config), with ``key=value`` ``overrides`` and Hydra's own refusal of
    unknown keys and wrong types, then the ranges of :func:`opt` and the schema's ``validate()``.

    The YAML file names its schema in its defaults list as ``/schema/<config_name with _>@_here_``
    and starts with ``# @package _global_``. Returns a ``schema`` instance; raises :class:`ConfigError`.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.config_store import ConfigStore
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from latent4d.config import conf_dir

    ConfigStore.instance().store(group="schema", name=config_name.replace("/", "_"), node=schema)
    bad = [o for o in overrides if "=" not in o or o.startswith(("+", "~", "hydra"))]
    if bad:
        raise ConfigError(f"{command}: expected key=value options, got: {' '.join(bad)}")
    for o in overrides:
        key, _, value = o.partition("=")
        if "${" in value:
            raise ConfigError(f"{command}: {key}={value}: interpolations (${{...}}) are not allowed in options; "
                              "give the value itself")
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose(config_name, overrides=[_quote(o) for o in overrides])
        obj = OmegaConf.to_object(cfg)
    except (HydraException, OmegaConfBaseException) as e:
        raise _hydra_error(e, schema, command) from None
    return _checked(obj, command)
