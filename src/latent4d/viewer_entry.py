"""Entry for ``latent4d view`` / ``latent4d render``: the viewer application lives in ``viewer/``
(installed as ``latent4d.viewer``; see ``viewer/app.py`` and docs/viewer.md)."""

from __future__ import annotations

import sys


def main(cmd: str, argv: list[str]) -> int:
    try:
        from latent4d.viewer import app
    except ImportError as e:
        print(
            f"latent4d {cmd}: the viewer cannot start: {e} (it needs open3d; run `make setup`)",
            file=sys.stderr,
        )
        return 2
    return app.main(cmd, argv)
