"""How the viewer words a failure: one line naming the file and the reason.

Shared by the application (error dialogs, ``latent4d view`` / ``render`` on stderr) and the panels'
readers (a third-party mesh loader's exception turned into words). Imports nothing of the viewer.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from latent4d.errors import InputError, Latent4DError


def describe(e: BaseException, path: Path | None) -> str:
    """The message of ``e`` (with its class name when it is not one of ours / an OS or value error),
    prefixed by ``path`` when the message does not name it already."""
    msg = str(e) or type(e).__name__
    if not isinstance(e, Latent4DError | OSError | ValueError):
        msg = f"{type(e).__name__}: {msg}"
    if path is not None and str(path) not in msg and path.name not in msg:
        msg = f"{path}: {msg}"
    return msg


def wrap(text: str, width: int) -> str:
    """``text`` wrapped to ``width`` characters, keeping its line breaks (error dialogs)."""
    return "\n".join(textwrap.fill(line, width) for line in text.splitlines() or [""])


def one_line(message: str, limit: int = 1000) -> str:
    """``message`` on one line (whitespace collapsed), at most ``limit`` characters."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_line(e: BaseException, path=None) -> str:
    """``<path>: <reason>`` on one line for an exception raised while opening ``path``."""
    msg = one_line(describe(e, None))
    if path is not None and not msg.startswith(str(path)):
        msg = f"{path}: {msg}"
    return one_line(msg)


def mesh_read_error(path, e: BaseException) -> InputError:
    """An :class:`InputError` naming ``path`` for an exception raised by a third-party mesh / point
    cloud loader (trimesh), with the reason in words where it is known."""
    detail = one_line(str(e), 200)
    if isinstance(e, IndexError):
        reason = f"face indices out of range: a face refers to a vertex the file does not have ({detail})"
    elif isinstance(e, MemoryError):
        reason = "the file declares more data than can be loaded (a corrupt or hostile header)"
    elif isinstance(e, UnicodeDecodeError):
        reason = "not a text file of this format (undecodable bytes)"
    else:
        reason = f"{type(e).__name__}: {detail}" if detail else type(e).__name__
    return InputError(f"{path}: cannot read this file as a mesh or point cloud ({reason})")
