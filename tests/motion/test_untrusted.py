"""Untrusted inputs through the motion CLI (issue 16): every malformed option, input file, run folder
or output path ends in exit code 2 with one ``error:`` line that names the option / file, no
traceback, nothing written, nothing pre-existing touched.

Runs are fabricated from tiny randomly-initialised networks saved with ``save_pretrained`` (no
training): every refusal here happens before a network computes anything. One valid
reconstruction (template tracking, 1 solver step) checks that the checks let good input through.
"""

from __future__ import annotations

import pickle
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import trimesh
from helpers import Payload, digest, fails, option_cases, refuses_existing_out_file
from omegaconf import OmegaConf

from latent4d.cli import main

M_SHAPE = 16  # latent queries of the fabricated shape encoder


# ----------------------------------------------------------------------------------------------
# fixtures


def _save_run(root: Path, name: str, target: str, nets: dict, data: dict | None = None) -> Path:
    d = root / name
    for sub, net in nets.items():
        net.save_pretrained(d / "models" / sub)
    OmegaConf.save(
        OmegaConf.create(
            {
                "family": "motion",
                "name": name,
                "model": {"_target_": target},
                "data": data or {"num_frames": 3},
            }
        ),
        d / "config.yaml",
    )
    return d


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_networks) -> dict[str, Path]:
    """Four motion runs (shape / deformation AE and diffusion) holding tiny random networks."""
    nets = tiny_networks(shape_latents=M_SHAPE, deform_latents=8, frames=3)
    sae, dae, sden, dden = (nets[k] for k in ("shape_ae", "deform_ae", "shape_denoiser", "deform_denoiser"))
    root = tmp_path_factory.mktemp("motion_runs")
    mod = "latent4d.motion.module."
    return {
        "shape_ae": _save_run(root, "shape_ae", mod + "ShapeAEModule", {"ae": sae}),
        "deform_ae": _save_run(root, "deform_ae", mod + "DeformAEModule", {"ae": dae}),
        "shape_diffusion": _save_run(
            root, "shape_diffusion", mod + "ShapeDiffusionModule", {"denoiser": sden, "shape_ae": sae}
        ),
        "deform_diffusion": _save_run(
            root,
            "deform_diffusion",
            mod + "DeformDiffusionModule",
            {"denoiser": dden, "shape_ae": sae, "deform_ae": dae},
        ),
    }


def _sphere(n: int, seed: int = 0) -> np.ndarray:
    p = np.random.default_rng(seed).normal(size=(n, 3))
    return (p / np.linalg.norm(p, axis=1, keepdims=True) * 0.3 + 2.0).astype(np.float32)  # world units


@pytest.fixture
def clouds(tmp_path) -> Path:
    """A valid 4-frame input folder (40 points per frame: more than the 16 latent queries)."""
    d = tmp_path / "clouds"
    d.mkdir()
    for t in range(4):
        np.savez(d / f"frame_{t:03d}.npz", points=_sphere(40, t))
    return d


def _argv(inp, out, shape_run, deform_run, *extra: str) -> list[str]:
    """``latent4d reconstruct motion`` with the diffusion runs ``shape_run`` / ``deform_run``."""
    return [
        "reconstruct",
        "motion",
        f"input={inp}",
        f"out={out}",
        f"shape_run={shape_run}",
        f"deform_run={deform_run}",
        *extra,
    ]


def _diffusion(runs) -> list[str]:
    return [f"shape_run={runs['shape_diffusion']}", f"deform_run={runs['deform_diffusion']}"]


# ----------------------------------------------------------------------------------------------
# reconstruct motion: options (each names the option; nothing is written)

BAD_OPTIONS = option_cases(
    "bogus=1",
    "steps=0",
    "steps=abc",
    "sampler=bogus",
    "resolution=0",
    "num_samples=0",
    "n_obs=-5",
    "noise=abc",
    "noise=-0.1",
    "mode=dense",
    "mesh=marching",
    "window=1",
    "seed=-1",
    "accumulate=-1",  # an option that went (unknown keys are refused)
    "guidance=nan",
    "method=bogus",
    "render_size=0",
    "normalize=maybe",
    ("method=autoencoder", "shape_ae"),
)


@pytest.mark.parametrize("extra,needle", BAD_OPTIONS, ids=[o[0][0] for o in BAD_OPTIONS])
def test_reconstruct_bad_option(capsys, runs, clouds, tmp_path, extra, needle):
    out = tmp_path / "out"
    fails(
        capsys, ["reconstruct", "motion", f"input={clouds}", f"out={out}", *_diffusion(runs), *extra], needle
    )
    assert not out.exists()


def test_reconstruct_missing_required_options(capsys, runs, clouds, tmp_path):
    fails(capsys, ["reconstruct", "motion", f"out={tmp_path / 'o'}", *_diffusion(runs)], "input=")
    fails(
        capsys,
        ["reconstruct", "motion", f"input={clouds}", f"deform_run={runs['deform_diffusion']}"],
        "shape_run",
    )


def test_track_script_checks_its_arguments(capsys, runs, clouds, tmp_path):
    """scripts/track_4d.py passes its options to the same checks (conf/reconstruct/motion.yaml's schema)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "track_4d", Path(__file__).parents[2] / "scripts" / "track_4d.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    base = [
        str(clouds),
        str(tmp_path / "o"),
        "--shape-run",
        str(runs["shape_diffusion"]),
        "--deform-run",
        str(runs["deform_diffusion"]),
    ]
    for extra, needle in (
        (["--steps", "0"], "steps"),
        (["--sampler", "bogus"], "sampler"),
        (["--set", "accumulate=1"], "accumulate"),
    ):
        assert mod.main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert "track_4d: error:" in err and needle in err, err
    assert not (tmp_path / "o").exists()


def test_local_choice_tuples_match_their_sources():
    from latent4d.diffusion.edm import SAMPLERS
    from latent4d.motion import commands, reconstruct
    from latent4d.motion.data import HELD_OUT

    assert reconstruct.SAMPLERS == SAMPLERS and commands.HELD_OUT == HELD_OUT


# ----------------------------------------------------------------------------------------------
# reconstruct motion: output paths are checked before anything loads or computes


def test_out_existing_file_fails_before_anything_loads(capsys, clouds, tmp_path):
    out = tmp_path / "result.txt"
    out.write_text("keep me")
    # the runs do not even exist: the out= error comes first, before any network or input is read
    fails(
        capsys,
        _argv(clouds, out, tmp_path / "nope", tmp_path / "nope"),
        "out=",
        "existing file",
    )
    assert out.read_text() == "keep me"


def test_out_foreign_folder_and_folder_under_file(capsys, runs, clouds, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    fails(
        capsys,
        ["reconstruct", "motion", f"input={clouds}", f"out={foreign}", *_diffusion(runs)],
        "out=",
        "summary.json",
    )
    assert (foreign / "thesis.tex").read_text() == "precious" and len(list(foreign.iterdir())) == 1
    f = tmp_path / "afile"
    f.write_text("x")
    fails(capsys, ["reconstruct", "motion", f"input={clouds}", f"out={f / 'sub'}", *_diffusion(runs)], "out=")


# ----------------------------------------------------------------------------------------------
# reconstruct motion: malformed input files (motion/io.py readers)


def _npy_with_header(path: Path, shape: tuple, body: bytes = b"") -> Path:
    """An .npy whose header declares ``shape`` (float32) followed by ``body`` only."""
    header = repr({"descr": "<f4", "fortran_order": False, "shape": shape}).encode()
    pad = 64 - (10 + len(header) + 1) % 64
    header += b" " * pad + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body)
    return path


def _frames_folder(tmp_path: Path, name: str, bad_name: str, writer) -> Path:
    """Three good frames + one malformed frame written by ``writer(path)``."""
    d = tmp_path / name
    d.mkdir()
    for t in range(3):
        np.save(d / f"f{t}.npy", _sphere(40, t))
    writer(d / bad_name)
    return d


def _ply_header_lies(p: Path) -> None:
    p.write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 4000000000\nproperty float x\n"
        b"property float y\nproperty float z\nend_header\n" + b"\0" * 24
    )


def _npz_member_lies(p: Path) -> None:
    buf = _npy_with_header(p.with_suffix(".tmp"), (1_000_000, 3), b"\0" * 12).read_bytes()
    p.with_suffix(".tmp").unlink()
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("points.npy", buf)


BAD_FRAMES = [
    ("empty_xyz", "f3.xyz", lambda p: p.write_text(""), "no points"),
    ("nan_npy", "f3.npy", lambda p: np.save(p, np.full((40, 3), np.nan, np.float32)), "NaN"),
    ("inf_txt", "f3.txt", lambda p: np.savetxt(p, np.full((40, 3), np.inf)), "NaN"),
    ("four_columns_npz", "f3.npz", lambda p: np.savez(p, points=np.zeros((40, 4))), "(N, 3)"),
    ("one_d_npy", "f3.npy", lambda p: np.save(p, np.zeros(40)), "(N, 3)"),
    ("two_columns_txt", "f3.xyz", lambda p: np.savetxt(p, np.zeros((40, 2))), "3 columns"),
    ("words_txt", "f3.xyz", lambda p: p.write_text("a b c\nd e f\n"), "cannot read"),
    ("npz_wrong_key", "f3.npz", lambda p: np.savez(p, a=np.zeros((4, 3)), b=np.zeros((4, 3))), "'points'"),
    ("npy_header_lies", "f3.npy", lambda p: _npy_with_header(p, (2**40, 3)), "declares"),
    ("npy_truncated", "f3.npy", lambda p: _npy_with_header(p, (100, 3), b"\0" * 600), "truncated"),
    (
        "npz_truncated",
        "f3.npz",
        lambda p: (np.savez(p, points=_sphere(400)), p.write_bytes(p.read_bytes()[:300])),
        "npz",
    ),
    ("npz_member_lies", "f3.npz", _npz_member_lies, "declares"),
    ("ply_header_lies", "f3.ply", _ply_header_lies, "4000000000 vertex"),
    ("ply_garbage", "f3.ply", lambda p: p.write_bytes(b"\x00\x01garbage" * 20), "not a PLY"),
    (
        "ply_bad_format",
        "f3.ply",
        lambda p: p.write_bytes(
            b"ply\nformat weird 1.0\nelement vertex 1\nproperty float x\nend_header\n1\n"
        ),
        "format",
    ),
]


@pytest.mark.parametrize("name,bad,writer,needle", BAD_FRAMES, ids=[b[0] for b in BAD_FRAMES])
def test_reconstruct_malformed_frame_file(capsys, runs, tmp_path, name, bad, writer, needle):
    d = _frames_folder(tmp_path, name, bad, writer)
    out = tmp_path / "out"
    fails(capsys, ["reconstruct", "motion", f"input={d}", f"out={out}", *_diffusion(runs)], needle, bad)
    assert not out.exists()


def test_pickled_frame_is_never_unpickled(capsys, runs, tmp_path):
    marker = tmp_path / "pwned.txt"
    d = _frames_folder(
        tmp_path,
        "pickle",
        "f3.npy",
        lambda p: np.save(p, np.array([Payload(marker)], dtype=object), allow_pickle=True),
    )
    fails(
        capsys,
        ["reconstruct", "motion", f"input={d}", f"out={tmp_path / 'o'}", *_diffusion(runs)],
        "f3.npy",
        "never unpickled",
    )
    assert not marker.exists()
    seq = tmp_path / "seq.npy"  # and as a whole-sequence file
    with open(seq, "wb") as fh:
        pickle.dump(Payload(marker), fh)
    fails(
        capsys,
        ["reconstruct", "motion", f"input={seq}", f"out={tmp_path / 'o'}", *_diffusion(runs)],
        "seq.npy",
    )
    assert not marker.exists()


BAD_SEQUENCES = [
    ("missing", None, "does not exist"),
    ("empty_folder", "dir", "empty sequence"),
    ("one_frame.npy", np.zeros((1, 40, 3), np.float32), "at least 2 frames"),
    ("two_d.npy", np.zeros((40, 3), np.float32), "(T, N, 3)"),
    ("xy_only.npz", np.zeros((4, 40, 2), np.float32), "(T, N, 3)"),
    ("all_same.npy", np.ones((4, 40, 3), np.float32), "coincide"),
    (
        "nan_frame.npz",
        np.concatenate(
            [np.stack([_sphere(40, t) for t in range(3)]), np.full((1, 40, 3), np.nan, np.float32)]
        ),
        "frame 3",
    ),
    ("cloud.xyz", "xyz", "expected a folder"),
]


@pytest.mark.parametrize("name,content,needle", BAD_SEQUENCES, ids=[b[0] for b in BAD_SEQUENCES])
def test_reconstruct_malformed_sequence(capsys, runs, tmp_path, name, content, needle):
    p = tmp_path / name
    if isinstance(content, np.ndarray):
        np.save(p, content) if p.suffix == ".npy" else np.savez(p, points=content)
    elif content == "dir":
        p.mkdir()
    elif content == "xyz":
        np.savetxt(p, _sphere(40))
    fails(capsys, ["reconstruct", "motion", f"input={p}", f"out={tmp_path / 'o'}", *_diffusion(runs)], needle)
    assert not (tmp_path / "o").exists()


def test_fewer_points_than_latent_queries_autoencoder(capsys, runs, tmp_path):
    """docs/motion.md: method=autoencoder encodes each frame with the shape AE, so fewer input points than
    its latent queries is a clear error (the diffusion methods resample the clouds and need no minimum)."""
    d = tmp_path / "sparse"
    d.mkdir()
    for t in range(4):
        np.save(d / f"f{t}.npy", _sphere(M_SHAPE - 6, t))
    fails(
        capsys,
        [
            "reconstruct",
            "motion",
            f"input={d}",
            f"out={tmp_path / 'o'}",
            "method=autoencoder",
            f"shape_ae={runs['shape_ae']}",
            f"deform_ae={runs['deform_ae']}",
        ],
        "frame 0 has 10 points",
        f"{M_SHAPE} latent queries",
    )
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------------------------
# reconstruct motion: ground truth and template files


def _gt(tmp_path: Path, name: str, **arrays) -> Path:
    p = tmp_path / name
    np.savez(p, **arrays)
    return p


def test_bad_ground_truth_and_template(capsys, runs, clouds, tmp_path):
    ico = trimesh.creation.icosphere(1)
    v4 = np.repeat(np.asarray(ico.vertices, np.float32)[None], 4, 0)
    f = np.asarray(ico.faces)
    cases = [
        (f"gt={_gt(tmp_path, 'gt3.npz', vertices=v4[:3], faces=f)}", ["gt=", "frame counts"]),
        (f"gt={_gt(tmp_path, 'nofaces.npz', vertices=v4)}", ["nofaces.npz", "'faces'"]),
        (f"gt={_gt(tmp_path, 'range.npz', vertices=v4, faces=f + 1000)}", ["range.npz", "outside"]),
        (f"gt={_gt(tmp_path, 'nan.npz', vertices=v4 * np.nan, faces=f)}", ["nan.npz", "NaN"]),
        (f"gt={_gt(tmp_path, 'flat.npz', vertices=v4[0], faces=f)}", ["flat.npz", "(T, V, 3)"]),
        (f"gt={tmp_path / 'missing.npz'}", ["gt=", "no such file"]),
        (f"template={tmp_path / 'missing.obj'}", ["template=", "no such file"]),
    ]
    garbage = tmp_path / "garbage.obj"
    garbage.write_text("this is not a mesh\n")
    cases.append((f"template={garbage}", ["garbage.obj"]))
    nan_mesh = tmp_path / "nan.obj"
    nan_mesh.write_text("v nan 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    cases.append((f"template={nan_mesh}", ["nan.obj", "NaN"]))
    for opt_, needles in cases:
        fails(
            capsys,
            ["reconstruct", "motion", f"input={clouds}", f"out={tmp_path / 'o'}", *_diffusion(runs), opt_],
            *needles,
        )
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------------------------
# reconstruct motion: damaged run folders and model folders


def _copy_run(runs, tmp_path: Path, name: str = "deform_diffusion") -> Path:
    dst = tmp_path / f"copy_{name}"
    shutil.copytree(runs[name], dst)
    return dst


def _weights(folder: Path) -> Path:
    return next(folder.glob("*.safetensors"))


def test_damaged_model_folders(capsys, runs, clouds, tmp_path):
    marker = tmp_path / "pwned.txt"

    def empty(d):
        _weights(d).write_bytes(b"")

    def truncated(d):
        w = _weights(d)
        w.write_bytes(w.read_bytes()[:100])

    def garbage_config(d):
        (d / "config.json").write_text("{not json")

    def pickled_only(d):
        _weights(d).unlink()
        with open(d / "diffusion_pytorch_model.bin", "wb") as fh:
            pickle.dump(Payload(marker), fh)

    def other_class(d):
        cfg = (d / "config.json").read_text().replace('"DeformDenoiser"', '"ShapeDenoiser"')
        (d / "config.json").write_text(cfg)

    cases = [
        (empty, "empty or truncated"),
        (truncated, "safetensors"),
        (garbage_config, "not valid JSON"),
        (pickled_only, "pickled"),
        (other_class, "holds a ShapeDenoiser"),
    ]
    for i, (damage, needle) in enumerate(cases):
        run = _copy_run(runs, tmp_path / str(i))
        damage(run / "models" / "denoiser")
        fails(
            capsys,
            _argv(clouds, tmp_path / "o", runs["shape_diffusion"], run),
            needle,
            str(run),
        )
    assert not marker.exists() and not (tmp_path / "o").exists()
    fails(
        capsys,
        _argv(clouds, tmp_path / "o", tmp_path / "nope", runs["deform_diffusion"]),
        "does not exist",
    )
    (tmp_path / "bare").mkdir()
    fails(
        capsys,
        _argv(clouds, tmp_path / "o", tmp_path / "bare", runs["deform_diffusion"]),
        "no exported",
    )


# ----------------------------------------------------------------------------------------------
# reconstruct motion: valid input still works, and a failed run leaves the earlier output intact


def test_valid_reconstruction_then_failed_rerun_keeps_it(capsys, runs, clouds, tmp_path):
    tmpl = tmp_path / "template.obj"
    ico = trimesh.creation.icosphere(2, radius=0.3)
    ico.apply_translation([2.0, 2.0, 2.0])
    ico.export(tmpl)
    out = tmp_path / "rec"
    argv = [
        "reconstruct",
        "motion",
        f"input={clouds}",
        f"out={out}",
        *_diffusion(runs),
        f"template={tmpl}",
        "steps=1",
        "n_obs=20",
        "render=false",
        "guidance=0",
    ]
    assert main(argv) == 0, capsys.readouterr().err
    z = np.load(out / "sample_00" / "trajectories.npz")
    assert z["vertices"].shape == (4, len(ico.vertices), 3) and np.isfinite(z["vertices"]).all()
    np.testing.assert_allclose(z["vertices"][0], ico.vertices, atol=1e-4)  # template = frame 0, world units
    before = digest(out)
    bad_gt = _gt(tmp_path, "gt2.npz", vertices=np.zeros((2, 3, 3), np.float32), faces=np.array([[0, 1, 2]]))
    fails(capsys, [*argv, f"gt={bad_gt}"], "frame counts")
    fails(capsys, [*argv, "steps=0"], "steps")
    assert digest(out) == before  # byte-identical
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rec")]  # no temporary folder left


# ----------------------------------------------------------------------------------------------
# sample / evaluate of a motion run


SAMPLE_BAD = option_cases(
    "bogus=1",
    "steps=0",
    "sampler=bogus",
    "resolution=0",
    "num_samples=0",
    "split=bogus",
    ("frame=99", "frame=99"),
    "n_obs=5000",
    "clip=-1",
    "seed=abc",
)
EVALUATE_BAD = option_cases(
    ("n=0", "n=0"),
    "resolution=0",
    "n_iou=abc",
    "mode=bogus",
    "bogus=1",
    "steps=-2",
)


@pytest.mark.parametrize(
    "cmd,extra,needle",
    [("sample", *c) for c in SAMPLE_BAD] + [("evaluate", *c) for c in EVALUATE_BAD],
    ids=[f"sample-{c[0][0]}" for c in SAMPLE_BAD] + [f"evaluate-{c[0][0]}" for c in EVALUATE_BAD],
)
def test_sample_evaluate_bad_options(capsys, runs, tmp_path, cmd, extra, needle):
    run = runs["deform_diffusion"]
    fails(capsys, [cmd, f"run={run}", f"out={tmp_path / 's'}" if cmd == "sample" else "n=1", *extra], needle)
    assert not (tmp_path / "s").exists() and not (run / "evaluation.json").exists()


def test_sample_out_file_and_damaged_run_configs(capsys, runs, tmp_path):
    refuses_existing_out_file(capsys, ["sample", f"run={runs['shape_ae']}"], tmp_path / "samples")
    bad = _copy_run(runs, tmp_path, "shape_ae")
    OmegaConf.save(
        OmegaConf.create(
            {
                "family": "motion",
                "model": {"_target_": "latent4d.motion.module.ShapeAEModule"},
                "data": {"num_frames": "abc"},
            }
        ),
        bad / "config.yaml",
    )
    fails(capsys, ["evaluate", f"run={bad}", "n=1"], "num_frames")
    OmegaConf.save(
        OmegaConf.create({"family": "motion", "model": {"_target_": "os.system"}}), bad / "config.yaml"
    )
    fails(capsys, ["sample", f"run={bad}"], "not a motion run")
