"""Screenshot of the studio mid-run (docs/studio.png): a real run with the real VGG19 weights.

Starts the studio on a free loopback port with a fresh results folder, opens it in Debian's
headless Chromium (selenium with chromium-driver), starts a run on the bundled images and takes
the screenshot once the run is past ``--at`` of its iterations.

    python scripts/studio_screenshot.py --out docs/studio.png [--size 256] [--iterations 300]
        [--style-weight 3e-4] [--at 0.4]
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def serve(results: Path):
    """uvicorn with the studio app on a free loopback port, in a thread; returns (server, url)."""
    import uvicorn

    from jaxnst.studio.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(create_app(results), log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}/"


def browser(width: int, height: int):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in (*CHROME_FLAGS, f"--window-size={width},{height}"):
        o.add_argument(a)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="docs/studio.png")
    p.add_argument("--size", default="256")
    p.add_argument("--iterations", default="300")
    p.add_argument("--style-weight", default=None, help="one value, or several for a sweep")
    p.add_argument("--at", type=float, default=0.4, help="fraction of the run to wait for")
    p.add_argument("--window", default="1280x900")
    args = p.parse_args()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    width, height = (int(v) for v in args.window.split("x"))
    with tempfile.TemporaryDirectory(prefix="jaxnst-studio-shot-") as d:
        server, thread, url = serve(Path(d))
        driver = browser(width, height)
        try:
            driver.get(url)
            WebDriverWait(driver, 30).until(lambda dr: dr.find_elements(By.ID, "f-size"))
            fields = {"f-size": args.size, "f-iterations": args.iterations}
            if args.style_weight:
                fields["f-style_weight"] = args.style_weight
            for field, value in fields.items():
                e = driver.find_element(By.ID, field)
                e.clear()
                e.send_keys(value)
            driver.find_element(By.ID, "start").click()
            target = args.at * int(args.iterations)
            WebDriverWait(driver, 3600, poll_frequency=0.5).until(
                lambda dr: (
                    dr.execute_script(
                        "return state.data && state.data[0].length ? "
                        "state.data[0][state.data[0].length - 1] : 0"
                    )
                    >= target
                )
            )
            time.sleep(1.5)  # let the newest preview load
            png = driver.get_screenshot_as_png()
            driver.find_element(By.ID, "stop").click()
            WebDriverWait(driver, 600, poll_frequency=0.5).until(
                lambda dr: dr.find_element(By.ID, "status").text.lower() == "stopped"
            )
        finally:
            driver.quit()
            server.should_exit = True
            thread.join(60)
    save_small_png(png, Path(args.out))
    return 0


def save_small_png(png: bytes, out: Path) -> None:
    """The screenshot with a 256-colour palette (a third of the bytes; the page is mostly flat)."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        small.save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
