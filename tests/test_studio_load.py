"""The studio under load: a real uvicorn server on a loopback port, 20 concurrent submissions from a
bounded client loop, and a health probe timed throughout."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("sse_starlette")
httpx2 = pytest.importorskip("httpx2")

from test_studio_helpers import SAMPLES, SMALL, Server  # noqa: E402

from jaxnst.studio.app import create_app  # noqa: E402

N_JOBS = 20
HEALTH_LIMIT_S = 1.0


class HealthProbe(threading.Thread):
    """GET /api/health every 50 ms until stopped; keeps every latency and any failure."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.latencies, self.failures = url, [], []
        self.done = threading.Event()

    def run(self) -> None:
        with httpx2.Client(base_url=self.url, timeout=10) as c:
            while not self.done.is_set():
                t = time.perf_counter()
                try:
                    r = c.get("/api/health")
                    if r.status_code != 200 or not r.json()["ok"]:
                        self.failures.append(r.status_code)
                except httpx2.HTTPError as e:
                    self.failures.append(repr(e))
                self.latencies.append(time.perf_counter() - t)
                self.done.wait(0.05)


@pytest.mark.slow  # a real server under 20 concurrent jobs (~15 s)
def test_twenty_concurrent_jobs_none_lost_and_health_stays_fast(small_vars, tmp_path):
    with Server(create_app(tmp_path, variables=small_vars)) as srv:
        probe = HealthProbe(srv.url)
        probe.start()

        def submit(i: int):
            with httpx2.Client(base_url=srv.url, timeout=60) as c:
                # 24 steps (12 chunks of 2, each a preview and events): the programs are compiled
                # by then (test_studio's), so 6-step jobs all finished within the probe's first
                # second on a quiet machine; these keep the server busy ~14 s (~280 probes; 80
                # steps: 45 s of the same load).
                data = {**SAMPLES, **SMALL, "iterations": "24", "seed": str(i)}
                return c.post("/api/jobs", data=data)

        with ThreadPoolExecutor(N_JOBS) as pool:
            responses = list(pool.map(submit, range(N_JOBS)))
        assert [r.status_code for r in responses] == [202] * N_JOBS, responses[0].text
        ids = {r.json()["id"] for r in responses}
        assert len(ids) == N_JOBS
        with httpx2.Client(base_url=srv.url, timeout=10) as c:
            statuses = {j["id"]: j["status"] for j in c.get("/api/jobs").json()["jobs"]}
            assert ids <= set(statuses)  # every job is queued, running or done: none lost
            assert set(statuses.values()) <= {"queued", "running", "finished"}
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                jobs = {j["id"]: j for j in c.get("/api/jobs").json()["jobs"]}
                if all(jobs[i]["status"] == "finished" for i in ids):
                    break
                time.sleep(0.2)
        probe.done.set()
        probe.join(15)
    assert all(jobs[i]["status"] == "finished" for i in ids), sorted(
        j["status"] for j in jobs.values()
    )
    assert not probe.failures
    assert len(probe.latencies) > 20
    worst = max(probe.latencies)
    print(f"health: {len(probe.latencies)} probes, worst {worst * 1000:.0f} ms")
    assert worst < HEALTH_LIMIT_S
