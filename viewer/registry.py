"""Which panel opens what: the panels register themselves, the viewer asks this registry.

A panel module declares, next to its class::

    @register_panel("hair", kinds=(FileKind("hair", (".data", ".hair", ".ply", ".npz")),),
                    runs=("hair",), order=0, probe=0)
    class HairPanel(ui.Panel): ...

- ``name``: the panel's attribute on the application (``app.hair``) and in :func:`read_input`;
- ``kinds``: the files and folders it opens (the Open dialog's filters, the "cannot open" message);
- ``runs``: the families whose run directories it opens (:func:`latent4d.runs.run_family` says
  which family a folder is);
- ``order``: its place in the side panel; ``probe``: when it is asked whether it reads a file or
  folder (lower first: hair files before meshes, sequence folders before RGB-D frame folders).

The registry names no panel module: :func:`entries` imports every ``*_panel`` module of this
package once (each registers itself on import); a panel defined elsewhere registers by calling
:func:`register_panel` before the viewer starts. A panel class provides ``can_read(path)`` (cheap:
extension, first bytes, a folder's listing), ``read(path)`` (pure: parses, raises ``InputError``
naming the file) and may refine ``check_run(path)`` (refuse a run of its family it cannot show).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from latent4d.errors import ConfigError, InputError

PANEL_MODULE_SUFFIX = "_panel"


@dataclass(frozen=True)
class FileKind:
    """One kind of input a panel opens: ``what`` it is (words) and its file ``extensions`` (lower
    case, with the dot; none for a kind that is only a folder)."""

    what: str
    extensions: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.what} ({'/'.join(self.extensions)})" if self.extensions else self.what


@dataclass(frozen=True)
class PanelEntry:
    """A registered panel (see the module docstring)."""

    name: str
    cls: type
    kinds: tuple[FileKind, ...]
    runs: tuple[str, ...] = ()
    order: int = 100
    probe: int = 100


_ENTRIES: dict[str, PanelEntry] = {}
_discovered = False


def register_panel(
    name: str, kinds: tuple[FileKind, ...], runs: tuple[str, ...] = (), order: int = 100, probe: int = 100
) -> Callable[[type], type]:
    """Class decorator: register the panel class under ``name`` (a later registration replaces it)."""
    if not name.isidentifier():
        raise ValueError(f"panel name {name!r} must be a Python identifier (it becomes an attribute)")

    def add(cls: type) -> type:
        _ENTRIES[name] = PanelEntry(name, cls, tuple(kinds), tuple(runs), int(order), int(probe))
        return cls

    return add


def discover() -> None:
    """Import every ``*_panel`` module of the viewer package once (they register themselves)."""
    global _discovered
    if _discovered:
        return
    package = __name__.rpartition(".")[0]
    folder = [str(Path(__file__).parent)]
    for info in pkgutil.iter_modules(folder):
        if info.name.endswith(PANEL_MODULE_SUFFIX):
            importlib.import_module(f"{package}.{info.name}")
    _discovered = True


def entries() -> list[PanelEntry]:
    """The registered panels in side-panel order."""
    discover()
    return sorted(_ENTRIES.values(), key=lambda e: (e.order, e.name))


def entry(name: str) -> PanelEntry:
    discover()
    if name not in _ENTRIES:
        raise KeyError(f"no viewer panel named {name!r} (registered: {', '.join(sorted(_ENTRIES))})")
    return _ENTRIES[name]


def open_filters() -> list[tuple[str, str]]:
    """``(extensions, description)`` filters of the Open dialog, one per file kind with extensions."""
    out = []
    for e in sorted(entries(), key=lambda e: (e.probe, e.name)):
        for k in e.kinds:
            if k.extensions:
                out.append((" ".join(k.extensions), k.what))
    return out


def _kinds_text() -> str:
    kinds = [k.describe() for e in sorted(entries(), key=lambda e: (e.probe, e.name)) for k in e.kinds]
    return ", ".join(kinds) + " or a run directory"


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if not (path.is_file() or path.is_dir()):
        raise InputError(f"{path}: not a regular file or folder")
    if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
        raise InputError(f"{path}: permission denied (not readable)")
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes)")


def _run_panel(path: Path) -> str | None:
    """The panel that shows run directory ``path`` (None: not a run). A damaged run config is an
    :class:`InputError` naming it; a run of a family no panel shows is refused, naming the family."""
    from latent4d.runs import run_family

    try:
        family = run_family(path)
    except ConfigError as e:
        raise InputError(str(e)) from None
    if family is None:
        return None
    for e in entries():
        if family in e.runs:
            e.cls.check_run(path)
            return e.name
    shown = [f for e in entries() for f in e.runs]
    raise InputError(
        f"{path}: a '{family}' run; the viewer shows {', '.join(shown[:-1])} and {shown[-1]} runs"
        if len(shown) > 1
        else f"{path}: a '{family}' run; the viewer shows no runs of that family"
    )


def panel_name_for(path) -> str:
    """The name of the panel that opens ``path`` (``"hair"``, ``"motion"``, ``"objects"``, ...).

    Cheap checks only (existence, size, extension, a file's first bytes, a folder's listing and
    run config); no window or renderer is needed. Raises :class:`InputError` naming ``path`` and
    the reason when nothing can open it (missing, empty, unknown type, damaged run config).
    """
    path = Path(path)
    _check_readable(path)
    if path.is_dir() and (name := _run_panel(path)) is not None:
        return name
    for e in sorted(entries(), key=lambda e: (e.probe, e.name)):
        if e.cls.can_read(path):
            return e.name
    kind = "folder" if path.is_dir() else f"'{path.suffix or '(no extension)'}' file"
    raise InputError(f"{path}: cannot open this {kind}: expected {_kinds_text()}")


def read_input(path) -> tuple[str, object]:
    """``(panel name, data)`` for ``path``: the panel's pure read (no window, no renderer).

    ``ViewerApp.show_input(name, data, path)`` then shows it. Raises whatever the reader raises
    (an :class:`InputError` naming the file for bad input).
    """
    path = Path(path)
    name = panel_name_for(path)
    return name, entry(name).cls.read(path)
