"""Small inputs for the viewer tests: hair, a tiny hair model, a mesh sequence, an RGB-D frame, bad files.

The hair model is not trained (that takes minutes): a strand-VAE whose linear paths are set to the
PCA of procedural strands (so it encodes / decodes real strands almost exactly) and a hairstyle-VAE
with random weights whose presence logits are biased to "hair everywhere", plus a random attribute
model. It exercises every model control of the viewer with plausible-looking hair.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def make_hair(path: Path, n: int = 3000, style: int = 3) -> Path:
    from latent4d.hair.formats import write_hair
    from latent4d.hair.synthetic import generate_hairstyle

    write_hair(path, generate_hairstyle(style, n, root_seed=1))
    return path


def make_hair_model(folder: Path, latent: int = 16, style_dim: int = 16, grid: int = 16) -> Path:
    import torch

    from latent4d.hair.pipeline import HairPipeline
    from latent4d.hair.scalp import Scalp
    from latent4d.hair.strand_vae import StrandVAE
    from latent4d.hair.strands import to_local
    from latent4d.hair.style_vae import HairstyleVAE
    from latent4d.hair.synthetic import generate_hairstyle

    torch.manual_seed(0)
    scalp = Scalp()
    P = 100
    sv = StrandVAE(num_points=P, latent_dim=latent, channels=(8, 16, 16, 16), hidden=32, layers=1)
    xs = []
    for style in range(6):
        hs = generate_hairstyle(style, 300, scalp, root_seed=style)
        strands = hs.strands.astype(np.float64)
        xs.append(to_local(strands, strands[:, 0], scalp.frames(strands[:, 0])))
    x = np.concatenate(xs) * sv.config.position_scale  # (S, P, 3) network units
    y = (np.diff(x, axis=1) * (P - 1)).reshape(len(x), -1)  # segments, decoder units
    mean = y.mean(0)
    _, s, vt = np.linalg.svd(y - mean, full_matrices=False)
    sigma = s[:latent] / np.sqrt(len(y))
    basis = vt[:latent]  # (D, (P-1)*3)
    diff = np.zeros(((P - 1) * 3, P * 3))  # flattened positions -> flattened segments
    for i in range(P - 1):
        for c in range(3):
            diff[i * 3 + c, (i + 1) * 3 + c] = P - 1
            diff[i * 3 + c, i * 3 + c] = -(P - 1)
    with torch.no_grad():
        for p in sv.decoder[-1].parameters():
            p.zero_()
        sv.dec_skip.weight.copy_(torch.as_tensor(basis.T * sigma, dtype=torch.float32))
        sv.dec_skip.bias.copy_(torch.as_tensor(mean, dtype=torch.float32))
        for p in sv.to_stats.parameters():
            p.zero_()
        enc = np.zeros((2 * latent, P * 3))
        enc[:latent] = (basis / sigma[:, None]) @ diff
        bias = np.concatenate([-(basis / sigma[:, None]) @ mean, np.full(latent, -10.0)])
        sv.enc_skip.weight.copy_(torch.as_tensor(enc, dtype=torch.float32))
        sv.enc_skip.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    vae = HairstyleVAE(
        latent_channels=latent,
        grid=grid,
        style_dim=style_dim,
        channels=(8, 16, 16, 16),
        scalp=scalp.to_dict(),
    )
    with torch.no_grad():
        # random weights barely react to z: scale the output layer so that style latents drawn from the
        # prior give strand latents with about unit spread (the strand-VAE's PCA units)
        # (no biases: z = 0 decodes to the mean strand everywhere)
        for m in [vae.from_latent, *vae.decoder]:
            if getattr(m, "bias", None) is not None:
                m.bias.zero_()
        last = vae.decoder[-1]
        out = vae.decode_raw(torch.randn(64, style_dim))[:, :-1]
        last.weight[:-1] /= out.std()
        last.bias[-1] = 6.0  # presence: hair on every scalp texel
        z = torch.randn(64, style_dim)
        vae.fit_attributes(z, torch.randn(64, len(vae.attribute_names)))
    HairPipeline(sv, vae, scalp).save_pretrained(folder)
    return folder


def make_sequence(folder: Path, frames: int = 6) -> Path:
    """A bending, twisting capsule: per-frame meshes (shared faces) in meshes/, noisy clouds in points/."""
    import trimesh

    base = trimesh.creation.capsule(height=1.0, radius=0.25, count=[24, 24])
    v0 = np.asarray(base.vertices)
    (folder / "meshes").mkdir(parents=True, exist_ok=True)
    (folder / "points").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for t in range(frames):
        a = 0.9 * np.sin(2 * np.pi * t / frames)
        z = v0[:, 2]
        ang = a * (z + 0.75)
        v = v0.copy()
        v[:, 0] = v0[:, 0] * np.cos(ang) - v0[:, 1] * np.sin(ang) + 0.4 * a * (z + 0.75) ** 2
        v[:, 1] = v0[:, 0] * np.sin(ang) + v0[:, 1] * np.cos(ang)
        trimesh.Trimesh(v, base.faces, process=False).export(folder / "meshes" / f"frame_{t}.ply")
        m = trimesh.Trimesh(v, base.faces, process=False)
        pts = m.sample(400, seed=t) + rng.normal(0, 0.01, (400, 3))
        trimesh.PointCloud(pts).export(folder / "points" / f"frame_{t}.ply")
    return folder


def make_rgbd(folder: Path, width: int = 160, height: int = 120) -> Path:
    """A box and a sphere in front of a camera: depth.png (uint16 mm), color.png, mask.png, intrinsics.json."""
    import trimesh
    from PIL import Image

    from latent4d.geometry.rgbd import look_at, render_rgbd

    folder.mkdir(parents=True, exist_ok=True)
    box = trimesh.creation.box((0.3, 0.3, 0.3))
    box.apply_translation((-0.25, 0.0, 0.0))
    box.visual.vertex_colors = np.tile([220, 40, 40, 255], (len(box.vertices), 1))
    ball = trimesh.creation.icosphere(3, 0.18)
    ball.apply_translation((0.25, 0.0, 0.05))
    ball.visual.vertex_colors = np.tile([40, 90, 220, 255], (len(ball.vertices), 1))
    f = 140.0 * width / 160  # a 60 degree field of view at any size (read_frame refuses implausible cameras)
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]])
    frame = render_rgbd([box, ball], K, look_at((0.0, 0.4, 1.4), (0.0, 0.0, 0.0)), width, height)
    Image.fromarray(np.round(frame.depth * 1000).astype(np.uint16)).save(folder / "depth.png")
    Image.fromarray(frame.rgb).save(folder / "color.png")
    Image.fromarray(frame.mask.astype(np.uint8)).save(folder / "mask.png")
    (folder / "intrinsics.json").write_text(json.dumps({"K": K.tolist()}))
    return folder


def make_mesh(path: Path) -> Path:
    import trimesh

    m = (
        trimesh.creation.torus(0.3, 0.1)
        if hasattr(trimesh.creation, "torus")
        else trimesh.creation.icosphere()
    )
    m.visual.vertex_colors = np.tile([60, 180, 90, 255], (len(m.vertices), 1))
    m.export(path)
    return path


def make_bad_files(folder: Path) -> dict[str, Path]:
    """A corrupt hair file, an 8-bit 'depth' frame, and a hair run without networks."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    bad = folder / "corrupt.data"
    bad.write_bytes(np.array([1000], np.int32).tobytes() + b"\x05\x00")  # claims 1000 strands, 2 bytes follow
    frame = folder / "bad_frame"
    frame.mkdir(exist_ok=True)
    Image.fromarray(np.full((20, 30), 7, np.uint8)).save(frame / "depth.png")
    (frame / "intrinsics.json").write_text(json.dumps({"fx": 20, "fy": 20, "cx": 15, "cy": 10}))
    run = folder / "hair_run_no_model"
    run.mkdir(exist_ok=True)
    (run / "config.yaml").write_text("family: hair\nname: style_vae\n")
    return {"corrupt": bad, "bad_frame": frame, "run_no_model": run}


def make_objects_model(folder: Path, code: int = 4) -> Path:
    """A hand-set objects model: the shape decoder is a ball whose radius follows shape code 0
    (16 ReLU units ~ |x| plus one unit carrying the code), a random SIREN appearance network and a
    3-object database. Enough for the viewer's code sliders and its live reconstruction."""
    import torch

    from latent4d.objects.appearance import AppearanceNet
    from latent4d.objects.database import LatentDatabase
    from latent4d.objects.sdf import ShapeDecoder

    torch.manual_seed(0)
    dec = ShapeDecoder(
        latent_dim=code, hidden=17, num_layers=1, latent_in=(), weight_norm=False, activation="relu"
    )
    dirs = torch.randn(16, 3)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    with torch.no_grad():
        w = torch.zeros(17, code + 3)
        w[:16, code:] = dirs  # relu(d . x): sums to ~ 4 |x| over many directions
        w[16, 0] = 1.0  # the code unit: relu(z0 + 2)
        lin = dec.layers[0]
        lin.weight.copy_(w)
        lin.bias.zero_()
        lin.bias[16] = 2.0
        dec.out.weight.zero_()
        dec.out.weight[0, :16] = 4.0 / 16
        dec.out.weight[0, 16] = 0.15
        dec.out.bias.fill_(-0.6 - 0.3)  # radius ~ 0.6 - 0.15 z0 (canonical units)
    app = AppearanceNet(shape_dim=code, appearance_dim=code, hidden=16, num_layers=2)
    db = LatentDatabase(
        names=["small", "medium", "large"],
        categories=["ball"] * 3,
        shape_dim=code,
        appearance_dim=code,
        init_std=0.5,
    )
    with torch.no_grad():
        for i, z0 in enumerate((1.5, 0.0, -1.5)):
            db.shape.weight[i, 0] = z0
    for name, net in (("shape_decoder", dec), ("appearance", app), ("database", db)):
        net.save_pretrained(folder / "models" / name)
    (folder / "config.yaml").write_text("family: objects\nname: latent_db\n")
    return folder
