"""The job queue: one descent at a time, on a worker thread, through :func:`jaxnst.stylize.stylize`.

A job's life: ``queued`` -> ``running`` -> ``finished`` | ``stopped`` (stopped early by its owner:
the image so far is kept) | ``failed`` (one-line message) ; or ``cancelled`` while queued;
``interrupted`` when the server stopped first. Each job has a :class:`Feed` of events, in order:
``queued``, ``started``, one ``progress`` per compiled chunk, then ``done`` (whatever the outcome).
The web app streams a feed to the page; the worker thread publishes into it. Nothing here imports
the web libraries.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from jaxnst import _interrupt
from jaxnst.optim import compilation
from jaxnst.studio import results
from jaxnst.studio.store import ACTIVE, Store, new_id

log = logging.getLogger("jaxnst.studio")
Event = tuple[int, str, dict[str, Any]]  # (sequence number from 0, kind, data)


class Feed:
    """An append-only list of events that asyncio tasks on any loop can wait on, published into
    from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = []
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        with self._lock:
            self._events.append((len(self._events), kind, data))
            waiters = list(self._waiters)
        for loop, ev in waiters:
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:  # that loop is closed
                pass

    def since(self, n: int) -> list[Event]:
        with self._lock:
            return self._events[n:]

    async def wait(self, n: int, timeout: float) -> list[Event]:
        """Events from number ``n`` on; waits up to ``timeout`` s when there are none yet."""
        ev = asyncio.Event()
        key = (asyncio.get_running_loop(), ev)
        with self._lock:
            if len(self._events) > n:
                return self._events[n:]
            self._waiters.add(key)
        try:
            await asyncio.wait_for(ev.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.discard(key)
        return self.since(n)


class Job:
    """One request: its record (what ``job.json`` holds), inputs, options and event feed."""

    def __init__(
        self,
        record: dict[str, Any],
        content: np.ndarray | None = None,
        style: np.ndarray | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.record = record
        self.content, self.style, self.options = content, style, options or {}
        self.feed = Feed()
        self.stop = threading.Event()
        self.stop_reason = "stopped"

    @property
    def id(self) -> str:
        return str(self.record["id"])

    @property
    def status(self) -> str:
        return str(self.record["status"])


Loader = Callable[[], tuple[dict, str]]


def _real_weights() -> tuple[dict, str]:
    from jaxnst.model import weights

    return weights.load_variables()


class JobQueue:
    """Jobs of one results folder, run one at a time on a worker thread.

    store: the results folder. variables: VGG19 Flax variables for every job (tests pass small
    random ones); default: the verified weights, loaded by the worker before the first job.
    """

    def __init__(
        self,
        store: Store,
        variables: dict | None = None,
        max_queue: int = 32,
        warm_job: tuple[np.ndarray, np.ndarray, dict[str, Any]] | None = None,
    ) -> None:
        self.store = store
        # (content, style, options) of the page's default job: the worker compiles its programs
        # (loading them from the persistent cache when they are there) before it takes a job.
        self.warm_job = warm_job
        self.warm: dict[str, Any] = {"status": "pending" if warm_job else "off"}
        self.max_queue = max_queue
        self._variables: tuple[dict, str] | None = (variables, "custom") if variables else None
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.running: Job | None = None
        for record in store.load_all():
            job = Job(record)
            job.feed.publish("done", _done_data(record))
            self._jobs[job.id] = job

    # ----------------------------------------------------------------- the page's side
    def submit(
        self,
        content: np.ndarray,
        style: np.ndarray,
        options: dict[str, Any],
        form: dict[str, Any],
        inputs: dict[str, str],
    ) -> Job:
        """Queue a job. content/style: float RGB (H, W, 3) at the working size; options: keyword
        options of ``stylize``; form: what the page asked for (kept in the record); inputs: the
        images' display names. Raises QueueFull."""
        # The lock guards only quick dictionary work: the event loop's handlers take it too.
        waiting = self._waiting()
        if waiting >= self.max_queue:
            raise QueueFull(f"the queue is full ({waiting} jobs waiting); try again later")
        record = {
            "id": new_id(),
            "created": time.time(),
            "status": "queued",
            "message": "",
            "size": [int(content.shape[1]), int(content.shape[0])],
            "inputs": inputs,
            "form": form,
            "members": results.member_labels(options),
            "step": 0,
            "iterations": results.planned_iterations(options, content.shape),
            "loss": None,
            "started": None,
            "finished": None,
            "files": {},
            "final_loss": None,
        }
        job = Job(record, content, style, options)
        self.store.write_record(record)
        self.store.save_image(job.id, "content.jpg", content)
        self.store.save_image(job.id, "style.jpg", style)
        with self._lock:
            self._jobs[job.id] = job
        job.feed.publish("queued", {"position": self._queue.qsize() + (self.running is not None)})
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def records(self) -> list[dict[str, Any]]:
        """Every job's record, newest first."""
        with self._lock:
            jobs = list(self._jobs.values())
        return [j.record for j in sorted(jobs, key=lambda j: -j.record["created"])]

    def stop(self, job_id: str) -> bool:
        """Stop a running job within a second (the chunk in flight is dropped; the image of the
        last completed one is kept) or cancel a queued one. False when the job is not active."""
        job = self.get(job_id)
        if job is None:
            return False
        with self._lock:
            cancel = job.status == "queued"
            if cancel:
                job.record["status"] = "cancelled"  # the worker skips it from now on
        if cancel:
            self._finish(job, "cancelled", "cancelled before it started")
            return True
        if job.status == "running":
            job.stop.set()
            return True
        return False

    def _waiting(self) -> int:
        return sum(1 for j in list(self._jobs.values()) if j.status == "queued")

    def health(self) -> dict[str, Any]:
        """Takes no lock and touches no file: it answers at once whatever the worker does."""
        run = self.running
        return {
            "ok": True,
            "queued": self._waiting(),
            "running": run.id if run else None,
            "jobs": len(self._jobs),
            "warmup": dict(self.warm),
        }

    # ----------------------------------------------------------------- the worker's side
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._work, name="jaxnst-studio-worker", daemon=True
            )
            self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the worker: the running job stops within a second and is marked interrupted
        (its image so far is saved); queued jobs are marked interrupted."""
        run = self.running
        if run is not None:
            run.stop_reason = "interrupted"
            run.stop.set()
        with self._lock:
            waiting = [j for j in self._jobs.values() if j.status == "queued"]
            for job in waiting:
                job.record["status"] = "interrupted"
        for job in waiting:
            self._finish(job, "interrupted", "the server stopped before this job started")
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _warm_up(self) -> None:
        """Compile the default job's programs (run for one step) unless a job is already
        waiting: a person's first job at the page's defaults then starts without compiling."""
        if self.warm_job is None or not self._queue.empty():
            self.warm["status"] = "skipped" if self.warm_job else "off"
            return
        from jaxnst.cli.warmup import first_evaluation

        content, style, options = self.warm_job
        self.warm["status"] = "running"
        t0 = time.perf_counter()
        try:
            variables, _ = self._weights()
            first_evaluation(content, style, variables=variables, **options)
        except Exception as e:  # a failed warm-up costs the first job a compile, nothing more
            log.warning("warm-up failed: %s", e)
            self.warm["status"] = "failed"
        else:
            self.warm["status"] = "done"
        self.warm["seconds"] = round(time.perf_counter() - t0, 2)
        log.info("warm-up %s in %.1f s", self.warm["status"], self.warm["seconds"])
        self.warm_job = None

    def _work(self) -> None:
        self._warm_up()
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                if job.status != "queued":  # cancelled while waiting
                    continue
                job.record.update(status="running", started=time.time())
                self.running = job
            try:
                self._run(job)
            except Exception as e:  # never let one job kill the worker
                log.exception("job %s failed", job.id)
                self._finish(job, "failed", results.error_message(e, job.record["size"]))
            finally:
                self.running = None
                job.content = job.style = None  # free the arrays; the record stays
                if compilation.release_if_crowded():  # (each job's shapes compile programs)
                    log.info("dropped jit's caches: the process neared the kernel's map limit")

    def _weights(self) -> tuple[dict, str]:
        if self._variables is None:
            self._variables = _real_weights()
        return self._variables

    def _run(self, job: Job) -> None:
        from jaxnst.stylize import stylize

        self.store.write_record(job.record)
        job.feed.publish(
            "started",
            {
                "size": job.record["size"],
                "members": job.record["members"],
                "iterations": job.record["iterations"],
            },
        )
        variables, digest = self._weights()
        cb = results.Previews(self.store, job)
        t0 = time.perf_counter()
        with _interrupt.cancel_on(job.stop):  # Stop ends the chunk in flight, not the next one
            result = stylize(
                job.content, job.style, variables=variables, callback=cb, **job.options
            )
        wall = time.perf_counter() - t0
        status = job.stop_reason if job.stop.is_set() else "finished"
        files, final = results.write(self.store, job, result, wall, digest, status)
        with self._lock:
            job.record.update(files=files, final_loss=final, step=cb.x)
        message = {
            "stopped": f"stopped at iteration {cb.x}",
            "interrupted": f"the server stopped at iteration {cb.x}",
        }.get(status, "")
        diverged = (
            result.diverged_at if isinstance(result.diverged_at, list) else [result.diverged_at]
        )
        if any(d is not None for d in diverged):
            message = "the loss became non-finite; the last finite image was kept"
        self._finish(job, status, message)

    def _finish(self, job: Job, status: str, message: str) -> None:
        job.record.update(status=status, message=message, finished=time.time())
        self.store.write_record(job.record)
        job.feed.publish("done", _done_data(job.record))


class QueueFull(RuntimeError):
    """Too many jobs waiting."""


def _done_data(record: dict[str, Any]) -> dict[str, Any]:
    return {
        k: record.get(k)
        for k in ("status", "message", "step", "files", "final_loss", "started", "finished")
    }


__all__ = ["ACTIVE", "Feed", "Job", "JobQueue", "QueueFull"]
