"""The studio's instant presets (issue 29): trained networks from ``--models DIR`` listed and run
in the request; the PNG equals :func:`jaxnst.apply_style` on the same resized photo; bad requests
get a one-line JSON error."""

import io

import jax
import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("multipart")

from PIL import Image  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402
from test_studio_helpers import decode_png  # noqa: E402

from jaxnst.feedforward import apply_style, model_file, network  # noqa: E402
from jaxnst.image_io import resize, to_uint8  # noqa: E402
from jaxnst.studio.app import create_app  # noqa: E402

LOCAL = "http://127.0.0.1"


@pytest.fixture(scope="module")
def setup(tmp_path_factory, small_vars):
    d = tmp_path_factory.mktemp("presets")
    net = network.NetConfig(0.25, styles=2)
    params = jax.device_get(network.init_params(jax.random.PRNGKey(1), net))
    rng = np.random.default_rng(0)
    for layer in params.values():  # two styles that differ
        if "gamma" in layer:
            layer["gamma"] = layer["gamma"] * rng.uniform(0.5, 1.5, layer["gamma"].shape)
            layer["beta"] = rng.normal(0, 0.5, layer["beta"].shape) if "beta" in layer else None
            if layer["beta"] is None:
                del layer["beta"]
    model = model_file.Model(params, net, {"styles": ["ink", "fire"], "size": 32, "steps": 7})
    (d / "models").mkdir()
    model_file.save(d / "models" / "two.jaxnst", model)
    (d / "models" / "broken.jaxnst").write_bytes(b"not a model")
    app = create_app(d / "results", variables=small_vars, models=d / "models")
    with TestClient(app, base_url=LOCAL) as c:
        yield c, model


def _photo(h=40, w=56):
    rng = np.random.default_rng(2)
    return (rng.uniform(size=(h, w, 3)) * 255).astype(np.uint8)


def png_bytes(a):
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def test_models_are_listed_and_a_broken_file_is_named(setup):
    c, _ = setup
    r = c.get("/api/models").json()
    assert [m["name"] for m in r["models"]] == ["two"]
    assert r["models"][0]["styles"] == ["ink", "fire"] and r["models"][0]["steps"] == 7
    assert len(r["skipped"]) == 1 and r["skipped"][0].startswith("broken.jaxnst: ")


@pytest.mark.parametrize("style, want", [("fire", 1), ("ink:1,fire:3", [0.25, 0.75])])
def test_instant_equals_apply_style_on_the_resized_photo(setup, style, want):
    c, model = setup
    photo = _photo()
    r = c.post("/api/instant", data={"model": "two", "style": style, "size": "32"},
               files={"content": ("p.png", png_bytes(photo), "image/png")})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and float(r.headers["x-jaxnst-seconds"]) > 0
    got = np.round(decode_png(r.content) * 255).astype(int)  # (decode_png: floats in [0, 1])
    small = resize(photo.astype(np.float32) / 255, 32, min_side=16).astype(np.float32)
    expect = to_uint8(apply_style(model, small, style=want))
    assert got.shape == expect.shape == (23, 32, 3)
    assert np.abs(got - expect).max() <= 1
    other = to_uint8(apply_style(model, small, style=0))
    assert np.abs(got - other).max() > 10  # (the styles do differ)


@pytest.mark.parametrize(
    "data, status, message",
    [
        ({"model": "nope"}, 404, "no preset named 'nope'"),
        ({"model": "broken"}, 400, "broken.jaxnst"),
        ({"model": "two", "style": "water"}, 400, "unknown style 'water'"),
        ({"model": "two", "strength": "3"}, 400, "outside this model's trained range"),
        ({"model": "two", "size": "big"}, 400, "must be numbers"),
        ({"model": "two", "size": "99999"}, 400, "size must be"),
    ],
)
def test_bad_requests_get_one_line(setup, data, status, message):
    c, _ = setup
    files = {"content": ("p.png", png_bytes(_photo()), "image/png")}
    r = c.post("/api/instant", data=data, files=files)
    assert r.status_code == status and message in r.json()["error"], r.text
    assert "\n" not in r.json()["error"]


def test_no_content_is_refused(setup):
    c, _ = setup
    r = c.post("/api/instant", data={"model": "two"}, files={"x": ("x", b"", "text/plain")})
    assert r.status_code == 400 and "content" in r.json()["error"]
    assert Image is not None and io is not None
