"""CLI commands of the hair family (``latent4d convert|sample|evaluate|reconstruct|demo`` dispatch here)."""

from __future__ import annotations

from pathlib import Path


def convert(inp: str, out: str, resample: int | None = None) -> dict:
    """``latent4d convert IN OUT [--resample N]``: between .data / .hair / .ply / .npz (by extension)."""
    from latent4d.hair.formats import convert_hair

    hs = convert_hair(inp, out, resample)
    print(f"[latent4d] wrote {out}: {hs.num_strands} strands ({int(hs.bald.sum())} bald), {hs.num_points} points")
    return {"strands": hs.num_strands, "points": hs.num_points, "out": str(Path(out))}
