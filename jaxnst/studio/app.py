"""The studio's ASGI application (Starlette; live updates as Server-Sent Events).

``create_app(results_dir)`` returns the app; ``jaxnst serve`` runs it under uvicorn. Routes:

    GET  /                              the page (static, shipped in the package)
    GET  /api/health                    {"ok": true, "queued": n, "running": id | null,
                                         "warmup": {"status", "seconds"?}}
    GET  /api/options                   the form: fields, defaults, help (from Options), samples
    GET  /api/samples/{name}            a bundled sample image
    GET  /api/jobs                      every job's record, newest first (survives restarts)
    POST /api/jobs                      multipart: content/style (file) or content_sample/
                                        style_sample (a bundled name), option fields -> 202 record
    GET  /api/jobs/{id}                 the record
    GET  /api/jobs/{id}/events          SSE: state, queued, started, progress..., done
    POST /api/jobs/{id}/stop            stop a running job (keeps its image) or cancel a queued one
    GET  /api/jobs/{id}/files/{name}    result.png, report.json, preview_000.jpg, ...
                                        (?download=1: as an attachment)

Errors are JSON ``{"error": "one line"}`` with a 4xx status. Security: see :class:`Guard`.
"""

from __future__ import annotations

import contextlib
import hmac
import json
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from jaxnst.studio import forms, presets, uploads
from jaxnst.studio.jobs import JobQueue, QueueFull
from jaxnst.studio.store import Store

STATIC = Path(__file__).parent / "static"
COOKIE = "jaxnst_token"
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class Guard:
    """Every request passes here first.

    - With a token, each request must carry it: ``Authorization: Bearer TOKEN``, the cookie set
      when the page is opened as ``/?token=TOKEN`` (the token then leaves the address bar), or
      ``?token=TOKEN``. Compared in constant time.
    - A state-changing request (POST) whose ``Origin`` is another site is refused, so a web page
      elsewhere cannot submit or stop jobs on a studio that listens on localhost.
    """

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        response = self.check(request)
        await (response or self.app)(scope, receive, send)

    def check(self, request: Request) -> Response | None:
        if request.method not in SAFE_METHODS:
            origin = request.headers.get("origin")
            if origin and urlsplit(origin).netloc != request.headers.get("host"):
                return error(403, "cross-site request refused")
        if self.token is None:
            return None
        given = request.query_params.get("token")
        if (
            given is not None
            and self._ok(given)
            and request.method == "GET"
            and request.url.path == "/"
        ):
            r = RedirectResponse("/", status_code=303)
            r.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
            return r
        auth = request.headers.get("authorization", "")
        sent = auth[7:] if auth.lower().startswith("bearer ") else None
        for candidate in (sent, request.cookies.get(COOKIE), given):
            if candidate is not None and self._ok(candidate):
                return None
        return error(
            401,
            "a valid token is required: open the address printed by "
            "'jaxnst serve' (it ends in ?token=...)",
        )

    def _ok(self, candidate: str) -> bool:
        assert self.token is not None
        return hmac.compare_digest(candidate.encode(), self.token.encode())


def samples() -> dict[str, Path]:
    """The bundled sample images by name."""
    d = resources.files("jaxnst") / "samples"
    return {
        p.name: Path(str(p))
        for p in d.iterdir()
        if p.name.lower().endswith((".jpg", ".jpeg", ".png"))
    }


def _defaults(names: list[str]) -> dict[str, str | None]:
    content: str | None
    style: str | None
    try:
        from jaxnst.cli.inputs import DEMO_CONTENT as content
        from jaxnst.cli.inputs import DEMO_STYLE as style
    except ImportError:
        content, style = (names + [None, None])[:2]
    return {
        "content": content if content in names else None,
        "style": style if style in names else None,
    }


def default_job(limits: forms.Limits) -> tuple[Any, Any, dict[str, Any]] | None:
    """(content, style, options) of a job submitted with the page's defaults: the default
    samples at the default size, every option blank. None without default samples."""
    files = samples()
    names = _defaults(sorted(files))
    if names["content"] is None or names["style"] is None:
        return None
    size, options = forms.parse({}, limits)
    content, style = (
        uploads.load_sample(files[n], n, size, limits) for n in (names["content"], names["style"])
    )
    return content, style, options


def _record(job_id: str, jobs: JobQueue) -> dict[str, Any] | Response:
    job = jobs.get(job_id)
    if job is None:
        return error(404, "no such job")
    return dict(job.record)


def routes(jobs: JobQueue, limits: forms.Limits) -> list:
    """The app's routes over a job queue."""
    sample_files = samples()

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def health(request: Request) -> Response:
        return JSONResponse(jobs.health())

    async def options(request: Request) -> Response:
        names = sorted(sample_files)
        return JSONResponse(
            forms.schema(limits) | {"samples": names, "sample_defaults": _defaults(names)}
        )

    async def sample(request: Request) -> Response:
        p = sample_files.get(request.path_params["name"])
        return FileResponse(p) if p else error(404, "no such sample")

    async def list_jobs(request: Request) -> Response:
        return JSONResponse({"jobs": [dict(r) for r in jobs.records()]})

    async def submit(request: Request) -> Response:
        return await _submit(request, jobs, limits, sample_files)

    async def get_job(request: Request) -> Response:
        r = _record(request.path_params["job_id"], jobs)
        return r if isinstance(r, Response) else JSONResponse(r)

    async def stop(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        if jobs.get(job_id) is None:
            return error(404, "no such job")
        if not await run_in_threadpool(jobs.stop, job_id):
            return error(409, "the job is not queued or running")
        return JSONResponse(dict(jobs.get(job_id).record))  # type: ignore[union-attr]

    async def events(request: Request) -> Response:
        return _events(request, jobs)

    async def file(request: Request) -> Response:
        job_id, name = request.path_params["job_id"], request.path_params["name"]
        p = jobs.store.file(job_id, name) if jobs.get(job_id) is not None else None
        if p is None:
            return error(404, "no such file")
        headers = {"Cache-Control": "no-store"}
        if request.query_params.get("download"):
            return FileResponse(p, filename=f"jaxnst-{job_id}-{name}", headers=headers)
        return FileResponse(p, headers=headers)

    return [
        Route("/", page),
        Route("/api/health", health),
        Route("/api/options", options),
        Route("/api/samples/{name}", sample),
        Route("/api/jobs", list_jobs, methods=["GET"]),
        Route("/api/jobs", submit, methods=["POST"]),
        Route("/api/jobs/{job_id}", get_job),
        Route("/api/jobs/{job_id}/events", events),
        Route("/api/jobs/{job_id}/stop", stop, methods=["POST"]),
        Route("/api/jobs/{job_id}/files/{name}", file),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]


async def _submit(
    request: Request, jobs: JobQueue, limits: forms.Limits, sample_files: dict[str, Path]
) -> Response:
    try:
        form = await uploads.read_form(request, limits, max_files=2, max_fields=64)
    except uploads.UploadError as e:
        return error(e.status, str(e))
    try:
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        try:
            size, options = forms.parse(fields, limits)
            images, names = [], {}
            for which in ("content", "style"):
                upload = form.get(which)
                name, image = await uploads.image(
                    which,
                    upload if isinstance(upload, UploadFile) else None,
                    fields.get(f"{which}_sample"),
                    size,
                    limits,
                    sample_files,
                )
                images.append(image)
                names[which] = name
        except forms.FormError as e:
            return error(400, str(e))
        except uploads.UploadError as e:
            return error(e.status, str(e))
    finally:
        await form.close()
    try:
        job = await run_in_threadpool(
            jobs.submit,
            images[0],
            images[1],
            options,
            {k: v for k, v in fields.items() if k not in forms.IMAGE_FIELDS} | {"size": size},
            names,
        )
    except QueueFull as e:
        return error(429, str(e))
    return JSONResponse(dict(job.record), status_code=202)


def _events(request: Request, jobs: JobQueue) -> Response:
    job = jobs.get(request.path_params["job_id"])
    if job is None:
        return error(404, "no such job")
    last = request.headers.get("last-event-id", "")
    start = int(last) + 1 if last.isdigit() else 0

    async def stream() -> AsyncIterator[dict[str, str]]:
        yield {"event": "state", "data": json.dumps(dict(job.record))}
        n = start
        while True:
            for seq, kind, data in await job.feed.wait(n, timeout=10.0):
                yield {"id": str(seq), "event": kind, "data": json.dumps(data)}
                n = seq + 1
                if kind == "done":
                    return

    return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store"})


def create_app(
    results_dir: str | Path,
    *,
    variables: dict | None = None,
    token: str | None = None,
    limits: forms.Limits | None = None,
    allowed_hosts: list[str] | None = None,
    warmup: bool = False,
    models: str | Path | None = None,
) -> Starlette:
    """The studio app over a results folder (created if missing; earlier jobs are listed).

    variables: VGG19 Flax variables for every job (default: the verified weights, loaded before
    the first job). token: required on every request when given. allowed_hosts: accepted Host
    headers (default: loopback names only, which stops DNS rebinding; pass ["*"] with a token
    when serving on another address). The worker thread starts and stops with the app's
    lifespan (``with TestClient(app)`` in tests). warmup: the worker first compiles the
    programs of the page's default job (the default samples and options), before any job.
    models: a folder of trained networks offered as instant presets (:mod:`presets`)."""
    limits = limits or forms.Limits()
    jobs = JobQueue(
        Store(results_dir),
        variables=variables,
        max_queue=limits.max_queue,
        warm_job=default_job(limits) if warmup else None,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        jobs.start()
        try:
            yield
        finally:
            await run_in_threadpool(jobs.close)

    hosts = allowed_hosts or (["*"] if token else LOOPBACK_HOSTS)
    app = Starlette(
        routes=presets.routes(presets.Presets(models), limits, samples()) + routes(jobs, limits),
        lifespan=lifespan,
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=hosts, www_redirect=False),
            Middleware(Guard, token=token),
        ],
    )
    app.state.jobs = jobs
    return app


__all__ = ["Guard", "create_app", "samples"]
