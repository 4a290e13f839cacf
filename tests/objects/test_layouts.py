"""Real frame layouts (latent4d.objects.layouts): tiny NOCS CAMERA / REAL275, YCB-Video and generic
frames built in the official layouts, read back; bad files give clear InputErrors; the restricted
unpickler refuses a payload."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from latent4d.errors import InputError
from latent4d.objects.layouts import (
    NOCS_INTRINSICS,
    category_table,
    detect_format,
    read_layout_frame,
    safe_unpickle,
)

H, W = 480, 640


def _rgb(path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)).save(path)


def _ids():
    """Instance ids (H, W): 1 and 2 are squares, 3 a small patch."""
    m = np.zeros((H, W), np.int64)
    m[100:180, 100:180] = 1
    m[250:330, 300:380] = 2
    m[400:420, 500:520] = 3
    return m


def _nocs(tmp_path, camera: bool):
    p = str(tmp_path / "0000")
    _rgb(p + "_color.png")
    mm = np.full((H, W), 900, np.int64)
    mm[_ids() > 0] = 800
    if camera:  # CAMERA composite depth: 3 channels, 256 * G + R mm, 32001 = no measurement
        mm[:10, :10] = 32001
        enc = np.zeros((H, W, 3), np.uint8)
        enc[..., 0], enc[..., 1] = mm % 256, mm // 256
        Image.fromarray(enc).save(p + "_depth.png")
    else:
        Image.fromarray(mm.astype(np.uint16)).save(p + "_depth.png")
    ids = _ids()
    mask = np.where(ids == 0, 255, ids).astype(np.uint8)
    Image.fromarray(np.stack([mask] * 3, -1) if camera else mask).save(p + "_mask.png")
    lines = ["1 1 02876657 bottle_a", "2 6 03797390 mug_b", "3 0 00000000 table"] if camera else \
        ["1 1 bottle_red", "2 6 mug_white", "3 0 table"]
    (tmp_path / "0000_meta.txt").write_text("\n".join(lines) + "\n")
    return p


@pytest.mark.parametrize("camera", [False, True])
def test_nocs_frames(tmp_path, camera):
    p = _nocs(tmp_path, camera)
    assert detect_format(p) == "nocs"
    f = read_layout_frame(p)
    fx, fy, cx, cy = NOCS_INTRINSICS["camera" if camera else "real"]
    np.testing.assert_allclose(f.scene.K, [[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    assert f.scene.depth[150, 150] == pytest.approx(0.8) and f.scene.depth[5, 300] == pytest.approx(0.9)
    if camera:
        assert f.scene.depth[5, 5] == 0.0  # 32001 = no measurement
    assert f.scene.instance_ids == [1, 2, 3]
    assert f.categories == {1: "bottle", 2: "mug"} and f.classes[2] == 6
    assert "class 0" in f.skipped[3]
    # a user's table; a database without mugs skips the mug with the reason
    g = read_layout_frame(p, categories="1:can", known=["can", "bottle"])
    assert g.categories == {1: "can"} and "categories=6:<category>" in g.skipped[2]
    h = read_layout_frame(p, known=["bottle"])
    assert "does not hold" in h.skipped[2]


def test_nocs_bad_files(tmp_path):
    p = _nocs(tmp_path, camera=False)
    (tmp_path / "0000_meta.txt").write_text("1 bottle\n")
    with pytest.raises(InputError, match="line 1"):
        read_layout_frame(p)
    (tmp_path / "0000_meta.txt").unlink()
    with pytest.raises(InputError, match="_meta.txt"):
        read_layout_frame(p, format="nocs")
    p = _nocs(tmp_path, camera=False)
    Image.fromarray(_ids().astype(np.uint8)).save(p + "_mask.png")  # 0-background mask
    with pytest.raises(InputError, match="255"):
        read_layout_frame(p)
    with pytest.raises(InputError, match="no frame there"):
        read_layout_frame(tmp_path / "9999")


def _ycb(tmp_path, meta: dict | None = None):
    from scipy.io import savemat

    p = str(tmp_path / "000001")
    _rgb(p + "-color.png")
    ids = _ids()
    label = np.select([ids == 1, ids == 2], [5, 2], 0).astype(np.uint8)  # mustard bottle, cracker box
    Image.fromarray(label).save(p + "-label.png")
    d = np.full((H, W), 9000, np.uint16)  # factor_depth 10000: 0.9 m
    d[label > 0] = 7000
    Image.fromarray(d).save(p + "-depth.png")
    K = np.array([[1066.778, 0, 312.9869], [0, 1067.487, 241.3109], [0, 0, 1]])
    savemat(p + "-meta.mat", meta if meta is not None else
            {"intrinsic_matrix": K, "factor_depth": np.array([[10000.0]]), "cls_indexes": np.array([[2], [5]]),
             "poses": np.zeros((3, 4, 2))})
    return p


def test_ycb_frame(tmp_path):
    p = _ycb(tmp_path)
    assert detect_format(p) == "ycb"
    f = read_layout_frame(p)
    assert f.scene.K[0, 0] == pytest.approx(1066.778)
    assert f.scene.depth[150, 150] == pytest.approx(0.7) and f.scene.depth[5, 5] == pytest.approx(0.9)
    assert f.categories == {5: "bottle"} and f.names[5] == "006_mustard_bottle"
    assert "003_cracker_box" in f.skipped[2]
    assert read_layout_frame(p, categories="2:camera").categories == {2: "camera"}


def test_ycb_bad_meta(tmp_path):
    p = _ycb(tmp_path, meta={"intrinsic_matrix": np.eye(3)})
    with pytest.raises(InputError, match="factor_depth"):
        read_layout_frame(p)
    (tmp_path / "000001-meta.mat").write_bytes(b"not a matlab file at all" * 10)
    with pytest.raises(InputError, match="MATLAB"):
        read_layout_frame(p)


def test_generic_layout(tmp_path):
    from latent4d.objects.io import write_depth_png, write_intrinsics

    d = tmp_path / "frame"
    d.mkdir()
    _rgb(d / "rgb.png")
    Image.fromarray(_ids().astype(np.uint8)).save(d / "mask.png")
    write_depth_png(d / "depth.png", np.full((H, W), 0.8))
    write_intrinsics(d / "intrinsics.json", [[600, 0, 320], [0, 600, 240], [0, 0, 1]], W, H)
    f = read_layout_frame(d)
    assert f.format == "generic" and f.categories == {1: None, 2: None, 3: None}
    assert read_layout_frame(d, categories="mug").categories == {1: "mug", 2: "mug", 3: "mug"}
    assert read_layout_frame(d, categories="1:mug").categories == {1: "mug"}


def test_category_tables(tmp_path):
    assert category_table("1:bottle, 2:bowl") == {1: "bottle", 2: "bowl"}
    (tmp_path / "t.json").write_text(json.dumps({"1": "bottle", "14": "mug"}))
    assert category_table(str(tmp_path / "t.json")) == {1: "bottle", 14: "mug"}
    (tmp_path / "t.yaml").write_text("5: bottle\n13: bowl\n")
    assert category_table(str(tmp_path / "t.yaml")) == {5: "bottle", 13: "bowl"}
    for bad in ("bottle", "x:bottle", {"1": 3}):
        with pytest.raises(InputError, match="categories"):
            category_table(bad)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        category_table(str(tmp_path / "bad.json"))


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_safe_unpickle(tmp_path):
    good = {"gt_RTs": np.eye(4)[None].astype(np.float32), "ids": [1, 2], "name": "x", "n": 3.5}
    (tmp_path / "good.pkl").write_bytes(pickle.dumps(good))
    back = safe_unpickle(tmp_path / "good.pkl")
    np.testing.assert_array_equal(back["gt_RTs"], good["gt_RTs"])
    assert back["ids"] == [1, 2] and back["name"] == "x"
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"x": _Payload()}))
    with pytest.raises(InputError, match="posix.system|os.system|not allowed"):
        safe_unpickle(tmp_path / "evil.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"\x80\x04junk")
    with pytest.raises(InputError, match="not a readable pickle"):
        safe_unpickle(tmp_path / "junk.pkl")


def test_reconstruct_objects_from_a_nocs_frame(tiny_run, tmp_path):
    """``reconstruct objects frame=<prefix>``: the layout's masks and class table; the class-0 instance and
    a category the database lacks are skipped with their reasons (printed and in summary.json)."""
    from latent4d.objects.commands import reconstruct

    p = _nocs(tmp_path, camera=False)
    out = tmp_path / "out"
    args = [f"frame={p}", f"run={tiny_run[0]}", "iterations=3", "init_iterations=1", "init_candidates=1", "level=3",
            "max_points=200", f"out={out}", "categories=1:bottle,6:can"]
    reconstruct(args)
    objs = {o["instance_id"]: o for o in json.loads((out / "summary.json").read_text())["objects"]}
    assert objs[1]["status"] == "ok" and objs[1]["category"] == "bottle"
    assert objs[2]["status"] == "skipped" and "not in the latent database" in objs[2]["reason"]
    assert objs[3]["status"] == "skipped" and "class 0" in objs[3]["reason"]
    from latent4d.errors import ConfigError

    with pytest.raises(ConfigError, match="frame= names the files"):
        reconstruct(args + [f"rgb={p}_color.png"])
    with pytest.raises(InputError, match="no instance to reconstruct"):
        reconstruct([a for a in args if not a.startswith("categories")] + ["categories=5:laptop", f"out={out}2"])
