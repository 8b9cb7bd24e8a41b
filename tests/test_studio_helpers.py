"""Shared pieces of the studio tests (no tests here): event-stream parsing, images as upload
bytes, a real uvicorn server on a loopback port in a thread, and headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import threading
import time
import zlib
from pathlib import Path
from typing import Self

import numpy as np
import pytest

from jaxnst import image_io

# One small size and optimizer for every job of the fast tests, so they share compiled programs
# (the bundled chelsea.jpg at 32 px is 32x21; Adam compiles in half L-BFGS's time, and the
# real-weights and browser tests run the default L-BFGS).
SMALL = {"size": "32", "iterations": "6", "chunk": "2", "optimizer": "adam"}
SAMPLES = {"content_sample": "chelsea.jpg", "style_sample": "swirls.png"}
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def parse_sse(text: str) -> list[tuple[str | None, str, dict]]:
    """(id, event, data) of each event in a text/event-stream body (comments skipped)."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            k, _, v = line.partition(":")
            fields[k] = v.removeprefix(" ")
        if "event" in fields:
            out.append((fields.get("id"), fields["event"], json.loads(fields.get("data", "null"))))
    return out


def png_bytes(h: int, w: int, seed: int = 0, flat: bool = False) -> bytes:
    """A PNG file of a smooth random (h, w) RGB image (or one grey, which compresses to almost
    nothing)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack(
        [
            0.5 + 0.4 * np.sin(6 * (rng.uniform(-1, 1) * x + rng.uniform(-1, 1) * y))
            for _ in range(3)
        ],
        -1,
    ).astype(np.float32)
    if flat:
        img = np.full((h, w, 3), 0.5, np.float32)
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"jaxnst-test-{os.getpid()}-{seed}-{h}x{w}.png"
    image_io.save(tmp, img)
    try:
        return tmp.read_bytes()
    finally:
        tmp.unlink()


def png_header_only(w: int, h: int) -> bytes:
    """A valid PNG signature and header claiming w x h pixels, with almost no data: a
    decompression bomb's shape without its size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def decode_png(data: bytes) -> np.ndarray:
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"jaxnst-test-dl-{os.getpid()}.png"
    tmp.write_bytes(data)
    try:
        return image_io.load(tmp)
    finally:
        tmp.unlink()


class Server:
    """A real uvicorn server for an app, on a free loopback port, in a thread."""

    def __init__(self, app) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=3)
        )
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


def chromium_or_skip() -> None:
    """Skip where Debian's chromium and chromium-driver are missing; in CI (.ci/run installs them)
    that is a failure."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs {', '.join(missing)} (apt-get install chromium chromium-driver)")
        pytest.skip(f"{', '.join(missing)} not installed")


def chrome(download_dir: Path, width: int = 1400, height: int = 1000):
    """Headless Debian Chromium under selenium (no driver download: the system chromedriver)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
    ):
        o.add_argument(a)
    o.add_experimental_option(
        "prefs",
        {"download.default_directory": str(download_dir), "download.prompt_for_download": False},
    )
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)
