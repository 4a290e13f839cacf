"""Helpers shared by the untrusted-input tests of several families (imported as ``helpers``:
tests/conftest.py puts this folder on ``sys.path``): a refused command, a folder's digest, a hostile
pickle, and bad-option cases named by their option."""

from __future__ import annotations

import hashlib
from pathlib import Path

from latent4d.cli import main


def call(capsys, *argv) -> tuple[int, str]:
    """``latent4d <argv>`` in this process (each argument as ``str``): its exit code and error output."""
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def fails(capsys, argv: list[str], *needles: str) -> str:
    """``latent4d <argv>`` returns 2 with one clear error naming ``needles`` (no traceback); returns
    the error output."""
    rc, err = call(capsys, *argv)
    assert rc == 2, f"expected a clear error for {argv}, got exit {rc}:\n{err}"
    assert "error:" in err and "Traceback" not in err, err
    for n in needles:
        assert n in err, f"'{n}' missing from: {err}"
    return err


def digest(folder: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file below ``folder`` (equal digests: byte-identical trees)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


class Payload:
    """Unpickling this calls ``open(marker, "w")``: what a hostile checkpoint or array file does (the
    file ``marker`` appears if it is ever unpickled)."""

    def __init__(self, marker: str | Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def option_cases(*overrides: str | tuple[str, str]) -> list[tuple[list[str], str]]:
    """``([override], needle)`` cases of bad options: the error must name ``needle``, which for a
    plain ``key=value`` is its key and otherwise is given as ``(override, needle)``."""
    cases = [o if isinstance(o, tuple) else (o, o.partition("=")[0]) for o in overrides]
    return [([o], needle) for o, needle in cases]


def refuses_existing_out_file(capsys, argv: list[str], path: Path) -> None:
    """``latent4d <argv> out=<path>`` with ``path`` an existing file is refused naming ``out=`` and
    ``existing file``, and the file's bytes are unchanged."""
    path.write_bytes(b"keep")
    fails(capsys, [*argv, f"out={path}"], "out=", "existing file")
    assert path.read_bytes() == b"keep"
