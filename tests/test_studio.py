"""The studio at the HTTP level (Starlette's test client), with the small random VGG19.

Every job runs the bundled images at 32 px (32x21) with 2-step chunks, so the jobs of this module
share their compiled programs."""

import json
import time

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("sse_starlette")
pytest.importorskip("multipart")
pytest.importorskip("httpx2")

from starlette.testclient import TestClient  # noqa: E402
from test_studio_helpers import (  # noqa: E402
    SAMPLES,
    SMALL,
    decode_png,
    parse_sse,
    png_bytes,
    png_header_only,
)

from jaxnst.studio import forms  # noqa: E402
from jaxnst.studio.app import create_app  # noqa: E402
from jaxnst.stylize import Options  # noqa: E402

LOCAL = "http://127.0.0.1"


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("studio")


@pytest.fixture(scope="module")
def client(small_vars, results_dir):
    with TestClient(create_app(results_dir, variables=small_vars), base_url=LOCAL) as c:
        yield c


def submit(client, files=None, **fields):
    data = {**SAMPLES, **SMALL, **fields}
    return client.post("/api/jobs", data=data, files=files)


def events_of(client, job_id):
    r = client.get(f"/api/jobs/{job_id}/events")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    return parse_sse(r.text)


def wait_for_step(client, job_id, step=1, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(f"/api/jobs/{job_id}").json()
        if r["step"] >= step:
            return r
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached step {step}")


def test_form_defaults_and_validation_come_from_options():
    s = forms.schema(forms.Limits())
    fields = {f["name"]: f for f in s["fields"]}
    assert fields["style_weight"]["default"] == Options.style_weight
    assert fields["iterations"]["default"] == Options.iterations
    assert fields["optimizer"]["choices"] == ["lbfgs", "adam", "rmsprop"]
    assert fields["seed"]["sweep"] and fields["seed"]["kind"] == "integers"
    assert "weights" not in fields and "content_layers" not in fields
    size, o = forms.parse(
        {"size": "64", "style_weight": "1e-4, 3e-4", "iterations": "40"}, forms.Limits()
    )
    assert size == 64 and o["style_weight"] == [1e-4, 3e-4] and o["chunk"] == 4
    for bad, words in [
        ({"weights": "/etc/passwd"}, "unknown field"),
        ({"init": "/etc/passwd"}, "init"),
        ({"style_weight": "-1"}, "style_weight"),
        ({"iterations": "abc"}, "iterations"),
        ({"size": "8"}, "size"),
        ({"seed": " ".join(map(str, range(17)))}, "sweep of 17"),
    ]:
        with pytest.raises(forms.FormError, match=words):
            forms.parse(bad, forms.Limits())


def test_job_streams_progress_in_order_then_done_and_downloads(client):
    r = submit(client)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["size"] == [32, 21] and job["status"] in ("queued", "running")
    events = events_of(client, job["id"])
    kinds = [k for _, k, _ in events]
    assert kinds[0] == "state" and kinds[-1] == "done"
    assert kinds[1:] == ["queued", "started", "progress", "progress", "progress", "done"]
    ids = [int(i) for i, _, _ in events[1:]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    steps = [d["step"] for _, k, d in events if k == "progress"]
    assert steps == [2, 4, 6]
    done = events[-1][2]
    assert done["status"] == "finished" and done["files"]["image"] == "result.png"
    png = client.get(f"/api/jobs/{job['id']}/files/result.png?download=1")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert "attachment" in png.headers["content-disposition"]
    assert decode_png(png.content).shape == (21, 32, 3)
    report = client.get(f"/api/jobs/{job['id']}/files/report.json").json()
    assert report["iterations"] == 6 and report["image_size"] == [32, 21]
    assert report["history"]["step"] == [0, 2, 4, 6]
    assert report["final_loss"]["total"] < report["history"]["total"][0]
    assert report["options"]["style_weight"] == Options.style_weight
    preview = client.get(f"/api/jobs/{job['id']}/files/preview_000.jpg")
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/jpeg"


def test_sweep_fills_a_grid(client):
    job = submit(client, style_weight="1e-4 1e-2").json()
    assert job["members"] == ["style 0.0001", "style 0.01"]
    events = events_of(client, job["id"])
    done = events[-1][2]
    assert done["status"] == "finished", done
    assert done["files"]["members"] == ["result_000.png", "result_001.png"]
    for name in ("result_000.png", "result_001.png", "preview_001.jpg", "sheet.png"):
        assert client.get(f"/api/jobs/{job['id']}/files/{name}").status_code == 200
    report = client.get(f"/api/jobs/{job['id']}/files/report.json").json()
    assert [m["style_weight"] for m in report["members"]] == [1e-4, 1e-2]
    # the heavier style weight ends with the lower style loss
    assert report["members"][1]["final_loss"]["style"] < report["members"][0]["final_loss"]["style"]


def test_stop_keeps_the_image_and_cancel_drops_a_queued_job(client):
    long = submit(client, iterations="4000").json()
    queued = submit(client).json()
    wait_for_step(client, long["id"])
    r = client.post(f"/api/jobs/{queued['id']}/stop")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert client.post(f"/api/jobs/{long['id']}/stop").status_code == 200
    done = events_of(client, long["id"])[-1][2]
    assert done["status"] == "stopped" and 0 < done["step"] < 4000
    png = client.get(f"/api/jobs/{long['id']}/files/result.png")
    assert decode_png(png.content).shape == (21, 32, 3)
    assert events_of(client, queued["id"])[-1][2]["status"] == "cancelled"
    assert client.get(f"/api/jobs/{queued['id']}/files/result.png").status_code == 404
    assert client.post(f"/api/jobs/{long['id']}/stop").status_code == 409


def test_what_the_pipeline_refuses_fails_the_job_with_its_one_line_message(client, monkeypatch):
    # (Scales with a sweep, the refusal this test used, now runs; the form checks every option,
    # so the pipeline's refusal is made to happen where it would: in prepare.)
    from jaxnst.pipeline import prepare

    def refuse(*a, **k):
        raise ValueError("scales: a refusal\nof the pipeline's, on two lines")

    monkeypatch.setattr(prepare, "prepare", refuse)
    job = submit(client, scales="16", style_weight="1e-4 1e-3").json()
    done = events_of(client, job["id"])[-1][2]
    assert done["status"] == "failed" and "scales" in done["message"]
    assert "\n" not in done["message"] and not done["files"]


def _entries(d):
    return sorted(p.name for p in d.iterdir())


@pytest.mark.parametrize(
    "name,data,status,words",
    [
        ("notes.txt", b"just some text, not an image", 400, "not a readable image"),
        ("cut.png", None, 400, "not a readable image"),  # truncated
        ("bomb.png", png_header_only(20000, 20000), 400, "too large"),  # 400 MP claimed
        ("empty.png", b"", 400, "empty file"),
        ("tiny.png", png_bytes(8, 8), 400, "too small"),
    ],
)
def test_bad_uploads_get_a_one_line_4xx_and_store_nothing(
    client, results_dir, name, data, status, words
):
    if data is None:
        whole = png_bytes(64, 96)
        data = whole[: len(whole) // 2]
    before = _entries(results_dir)
    r = submit(client, files={"content": (name, data, "image/png")})
    assert r.status_code == status, r.text
    message = r.json()["error"]
    assert words in message and "\n" not in message and name in message
    assert "/tmp" not in message and "jaxnst-upload" not in message
    assert _entries(results_dir) == before


def test_uploads_capped_in_bytes_and_pixels(small_vars, tmp_path):
    limits = forms.Limits(max_upload_bytes=4000, max_pixels=64 * 64)
    c = TestClient(create_app(tmp_path, variables=small_vars, limits=limits), base_url=LOCAL)
    big = png_bytes(128, 128)  # ~10 kB, 16384 px
    assert len(big) > 4000
    r = c.post(
        "/api/jobs",
        data={"style_sample": "swirls.png"},
        files={"content": ("big.png", big, "image/png")},
    )
    assert r.status_code == 413 and "limit" in r.json()["error"]
    small = png_bytes(80, 80, flat=True)  # a flat image: a few hundred bytes, 6400 px
    assert len(small) < 4000
    r = c.post(
        "/api/jobs",
        data={"style_sample": "swirls.png"},
        files={"content": ("many.png", small, "image/png")},
    )
    assert r.status_code == 413 and "limit" in r.json()["error"], r.text
    r = c.post("/api/jobs", content=b"x" * 10, headers={"content-length": str(10**9)})
    assert r.status_code == 413
    assert _entries(tmp_path) == []


def test_upload_runs_like_a_sample(client):
    files = {
        "content": ("photo.png", png_bytes(64, 96, seed=1), "image/png"),
        "style": ("paint.png", png_bytes(90, 60, seed=2), "image/png"),
    }
    job = submit(client, files=files).json()
    assert job["inputs"] == {"content": "photo.png", "style": "paint.png"}
    assert events_of(client, job["id"])[-1][2]["status"] == "finished"


def test_paths_from_clients_never_reach_the_file_system(client):
    job = client.get("/api/jobs").json()["jobs"][0]["id"]
    for path in [
        f"/api/jobs/{job}/files/job.json",
        f"/api/jobs/{job}/files/..%2Fjob.json",
        f"/api/jobs/{job}/files/../../../etc/passwd",
        f"/api/jobs/{job}/files/%2e%2e",
        "/api/jobs/..%2F..%2Fetc/files/passwd",
        "/api/jobs/0123456789abcdef/files/result.png",
        "/api/jobs/../files/result.png",
        "/static/../jobs.py",
        "/static/%2e%2e/app.py",
        "/api/samples/..%2F__init__.py",
    ]:
        r = client.get(path)
        assert r.status_code in (400, 404), path
        assert b"def " not in r.content and b"root:" not in r.content
    r = submit(client, content_sample="../__init__.py")
    assert r.status_code == 400 and "no bundled sample" in r.json()["error"]


def test_token_is_required_on_every_request(small_vars, tmp_path):
    app = create_app(tmp_path, variables=small_vars, token="s3cret-token")
    c = TestClient(app, base_url="http://203.0.113.5:8000")
    for path in ("/", "/api/health", "/api/jobs", "/static/studio.js"):
        assert c.get(path).status_code == 401
        assert c.get(path, headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    assert c.get("/api/health?token=nope").status_code == 401
    assert c.get("/api/health", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    r = c.get("/?token=s3cret-token", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert "httponly" in r.headers["set-cookie"].lower()
    assert c.get("/api/jobs").status_code == 200  # the cookie now carries it
    assert "jaxnst" in c.get("/").text


def test_localhost_refuses_other_hosts_and_cross_site_posts(client):
    other = TestClient(client.app, base_url="http://evil.example")
    assert other.get("/api/health").status_code == 400  # DNS rebinding
    r = client.post(
        "/api/jobs", data={**SAMPLES, **SMALL}, headers={"Origin": "http://evil.example"}
    )
    assert r.status_code == 403 and "cross-site" in r.json()["error"]


def test_restart_lists_earlier_results_and_marks_cut_off_jobs_interrupted(small_vars, tmp_path):
    with TestClient(create_app(tmp_path, variables=small_vars), base_url=LOCAL) as c:
        done = submit(c).json()
        events_of(c, done["id"])
        cut = submit(c, iterations="4000").json()
        waiting = submit(c).json()
        wait_for_step(c, cut["id"])
    # the server stopped: the running job kept its image so far, the waiting one never started
    rec = json.loads((tmp_path / waiting["id"] / "job.json").read_text())
    assert rec["status"] == "interrupted"
    # a job whose server was killed outright still says running on disk
    killed = json.loads((tmp_path / done["id"] / "job.json").read_text())
    killed.update(id="00000000deadbeef", status="running")
    (tmp_path / killed["id"]).mkdir()
    (tmp_path / killed["id"] / "job.json").write_text(json.dumps(killed))
    with TestClient(create_app(tmp_path, variables=small_vars), base_url=LOCAL) as c:
        jobs = {j["id"]: j for j in c.get("/api/jobs").json()["jobs"]}
        assert jobs[done["id"]]["status"] == "finished"
        assert jobs[cut["id"]]["status"] == "interrupted" and jobs[cut["id"]]["step"] > 0
        assert jobs[waiting["id"]]["status"] == "interrupted"
        assert jobs[killed["id"]]["status"] == "interrupted"
        png = c.get(f"/api/jobs/{done['id']}/files/result.png")
        assert decode_png(png.content).shape == (21, 32, 3)
        assert c.get(f"/api/jobs/{cut['id']}/files/result.png").status_code == 200
        assert events_of(c, done["id"])[-1][1] == "done"
        assert c.get(f"/api/jobs/{done['id']}/files/thumb.jpg").status_code == 200


def test_real_weights_job_stylizes(real_vars, tmp_path):
    variables, _ = real_vars
    with TestClient(create_app(tmp_path, variables=variables), base_url=LOCAL) as c:
        job = submit(c, size="64", iterations="10", chunk="5").json()
        done = events_of(c, job["id"])[-1][2]
        assert done["status"] == "finished", done
        report = c.get(f"/api/jobs/{job['id']}/files/report.json").json()
        style = report["history"]["style"]
        assert style[-1] < 0.5 * style[0]
        out = decode_png(c.get(f"/api/jobs/{job['id']}/files/result.png").content)
        content = decode_png(c.get(f"/api/jobs/{job['id']}/files/content.jpg").content)
        assert out.shape == content.shape and np.abs(out - content).mean() > 0.02


def test_warmup_compiles_the_default_job_before_anyone_asks(small_vars, tmp_path, monkeypatch):
    """`jaxnst serve` compiles the page's default job (default samples, size and options) before
    its first job: that job then compiles nothing (without the warm-up it compiles its chunk
    program, its targets and more)."""
    from jaxnst.stylize import compile_stats

    monkeypatch.setattr(forms, "SIZE_DEFAULT", 32)  # the small network's shapes
    app = create_app(tmp_path, variables=small_vars, warmup=True)
    with TestClient(app, base_url=LOCAL) as c:
        deadline = time.monotonic() + 300
        while (warm := c.get("/api/health").json()["warmup"])["status"] in ("pending", "running"):
            assert time.monotonic() < deadline, warm
            time.sleep(0.05)
        assert warm["status"] == "done" and warm["seconds"] >= 0, warm
        before = compile_stats()["compiles"]
        job = c.post("/api/jobs", data={**SAMPLES, "iterations": ""}).json()
        done = events_of(c, job["id"])[-1][2]
        assert done["status"] == "finished", done
        assert compile_stats()["compiles"] == before
    off = create_app(tmp_path / "off", variables=small_vars)
    with TestClient(off, base_url=LOCAL) as c:
        assert c.get("/api/health").json()["warmup"] == {"status": "off"}


def test_each_finished_job_lets_a_crowded_server_drop_its_compiled_programs(client, monkeypatch):
    """A server compiles for every new shape for as long as it runs: after each job it checks its
    memory maps (jaxnst.optim.compilation.release_if_crowded), before the kernel's limit."""
    from jaxnst.optim import compilation

    calls = []
    monkeypatch.setattr(compilation, "release_if_crowded", lambda: calls.append(1) or True)
    job = submit(client).json()
    assert events_of(client, job["id"])[-1][1] == "done"
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:  # (the worker's finally follows "done")
        time.sleep(0.05)
    assert calls
