"""Entry for ``latent4d view`` / ``latent4d render``: the viewer application lives in ``viewer/``."""

from __future__ import annotations

import sys


def main(cmd: str, argv: list[str]) -> int:
    try:
        from latent4d.viewer import app  # noqa: F401
    except ImportError:
        print(f"latent4d {cmd}: the viewer is not part of this version yet", file=sys.stderr)
        return 2
    return app.main(cmd, argv)
