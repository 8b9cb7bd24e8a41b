"""--content-labels and --style-labels (issue 30, step 3): refusals in one line with nothing
written, and the colours left out said in one line and in the JSON report."""

import json

import numpy as np
import pytest
from conftest import smooth_image
from PIL import Image
from test_labels import BLUE, GREEN, RED, halves

from jaxnst.cli import command as cli


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("labels")
    rng = np.random.default_rng(0)
    for name, (h, w) in (("c.png", (24, 32)), ("s.png", (24, 24))):
        image = smooth_image(rng, h, w)
        image = 0.9 + 0.05 * image if name == "c.png" else image  # pale: a steep recolouring
        Image.fromarray((image * 255).astype(np.uint8)).save(d / name)
    Image.fromarray(halves(12, 16, RED, GREEN)).save(d / "cl.png")  # half size: resized
    sl = halves(24, 24, GREEN, RED)
    sl[:, -6:] = BLUE  # in the style only: left out, said in one line
    Image.fromarray(sl).save(d / "sl.png")
    Image.fromarray((rng.random((24, 24, 3)) * 255).astype(np.uint8)).save(d / "photo.png")
    (d / "text.png").write_text("not an image")
    return d


def run(argv, capsys):
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "content_labels, message",
    [("text.png", "text.png"), ("photo.png", "distinct colours"), (None, "go together")],
)
def test_the_cli_refuses_bad_labels_in_one_line_writing_nothing(
    files, tmp_path, capsys, content_labels, message
):
    argv = [files / "c.png", files / "s.png", "-o", tmp_path / "o.png", "--size", 32,
            "--style-labels", files / "sl.png", "--json", tmp_path / "r.json"]  # fmt: skip
    if content_labels:
        argv += ["--content-labels", files / content_labels]
    code, err = run(argv, capsys)
    assert code == 2 and message in err and err.strip().count("\n") == 0, err
    assert list(tmp_path.iterdir()) == []


def test_the_cli_guides_by_labels_and_says_what_it_left_out(files, tmp_path, capsys, real_vars):
    """As issue 30 runs it (--method photoreal with labels); the pale content's recoloured start
    is unphotographic, so the preset's weight is raised, and that is said in one line too."""
    argv = [files / "c.png", files / "s.png", "-o", tmp_path / "o.png", "--size", 32,
            "--iterations", 2, "--method", "photoreal", "--content-labels", files / "cl.png",
            "--style-labels", files / "sl.png", "--json", tmp_path / "r.json"]  # fmt: skip
    code, err = run(argv, capsys)
    assert code == 0, err
    line = "labels left out: #0000ff (not in the content labels); guiding 2 region(s)"
    assert line in err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["labels_left_out"] == line
    weight = report["options"]["photoreal_weight"]
    (note,) = report["notes"]
    assert weight > 1e10 and note.startswith(f"photoreal weight {weight:.3g}: ") and note in err
