"""scripts/compare_photoreal.py's DPST case: its labels made flat as DPST reads them, its pairs
laid out at one size, and the issue's ratios (no network: the scoring itself is
jaxnst.loss.matting's and jaxnst.objective's, tested where they live)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("cp", ROOT / "scripts" / "compare_photoreal.py")
assert spec is not None and spec.loader is not None
cp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cp)


def test_labels_snap_to_the_colours_dpst_reads():
    a = np.zeros((4, 6, 3), np.uint8)
    a[:, 3:] = 255  # black | white
    a[:, 2] = (20, 12, 5)  # within 0.1 of black: black
    a[:, 3] = (200, 190, 180)  # an anti-aliased edge, near no colour: nearest found (white)
    a[0, 0] = (0, 250, 3)  # one green pixel: green is found, so it stays
    out = cp.snap_labels(a)
    assert out.dtype == np.uint8 and out.shape == a.shape
    assert (out[:, 2] == 0).all() and (out[:, 3] == 255).all()
    assert tuple(out[0, 0]) == (0, 255, 0) and tuple(out[1, 0]) == (0, 0, 0)
    # An edge pixel half way between black and white is grey only within DPST's grey band.
    a[:, 3] = 128
    assert (cp.snap_labels(a)[:, 3] == 128).all()
    a[:, 3] = 90  # outside every band, grey no longer found: the nearest of black and white
    a[0, 0] = 0
    assert set(np.unique(cp.snap_labels(a))) <= {0, 255}
    with pytest.raises(ValueError, match="nine label colours"):
        cp.snap_labels(np.full((2, 2, 3), 60, np.uint8))


def test_dpst_pairs_are_resized_with_flat_labels(tmp_path):
    repo = tmp_path / "examples"
    rng = np.random.default_rng(0)
    seg = np.zeros((30, 40, 3), np.uint8)
    seg[:, 20:] = (0, 255, 0)
    seg[:, 19] = (30, 140, 30)  # an anti-aliased edge
    files = {
        "input/in2.png": rng.integers(0, 256, (30, 40, 3)),
        "style/tar2.png": rng.integers(0, 256, (20, 40, 3)),
        "segmentation/in2.png": seg,
        "segmentation/tar2.png": seg[:20],
        "final_results/best2_t_1000.png": rng.integers(0, 256, (30, 40, 3)),
    }
    for name, a in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a.astype(np.uint8)).save(repo / name)
    out = tmp_path / "runs"
    out.mkdir()
    pair = cp.dpst_pairs(repo, [2], 20, out)["in2"]
    sizes = {}
    for k, p in pair.items():
        with Image.open(p) as im:
            sizes[k] = im.size
    assert sizes == {
        "content": (20, 15),
        "style": (20, 10),
        "content_seg": (20, 15),
        "style_seg": (20, 10),
        "dpst": (20, 15),
    }
    with Image.open(pair["content_seg"]) as im:
        colours = np.unique(np.asarray(im).reshape(-1, 3), axis=0)
    assert colours.tolist() == [[0, 0, 0], [0, 255, 0]]


def test_ratios_are_the_issues_bar():
    row = {
        "gatys": {"unexplained_share": 0.3, "style_loss": 1.0},
        "photoreal": {"unexplained_share": 0.05, "style_loss": 6.0},
        "smoothed": {"unexplained_share": 0.02, "style_loss": 8.0},
        "dpst": {"unexplained_share": 0.1, "style_loss": 4.0},
    }
    r = cp.ratios({"a": row, "b": {"photoreal": row["photoreal"]}})
    assert r["a"] == pytest.approx(
        {
            "unexplained_ours_over_dpst": 0.5,
            "style_ours_over_dpst": 1.5,
            "unexplained_gatys_over_ours": 6.0,
            "unexplained_smoothed_over_dpst": 0.2,
            "style_smoothed_over_dpst": 2.0,
        }
    )
    assert set(r["b"].values()) == {None}
