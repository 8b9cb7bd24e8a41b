"""The studio in a real browser: Debian's Chromium driven by selenium through chromium-driver,
against a real uvicorn server on a loopback port (small random VGG19)."""

import time
from pathlib import Path

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("sse_starlette")
pytest.importorskip("selenium")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402
from test_studio_helpers import Server, chrome, chromium_or_skip, decode_png  # noqa: E402

import jaxnst  # noqa: E402
from jaxnst.studio.app import create_app  # noqa: E402

SAMPLES_DIR = Path(jaxnst.__file__).parent / "samples"
# Records every src the preview image takes, however fast the chunks come.
WATCH_PREVIEW = """
window.__srcs = [];
const box = document.getElementById('previews');
new MutationObserver((changes) => {
  for (const m of changes) {
    if (m.target.id === 'preview-0' && m.attributeName === 'src') window.__srcs.push(m.target.src);
  }
}).observe(box, {attributes: true, subtree: true, attributeFilter: ['src']});
"""
# Pixels of the loss chart's canvas that are not blank.
CHART_INK = """
const c = document.querySelector('#chart canvas');
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let n = 0;
for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
return n;
"""


def _fill(driver, field_id: str, value: str) -> None:
    e = driver.find_element(By.ID, field_id)
    e.clear()
    e.send_keys(value)


@pytest.mark.slow  # a browser
def test_browser_upload_run_watch_and_download(small_vars, tmp_path):
    chromium_or_skip()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with Server(create_app(tmp_path / "results", variables=small_vars)) as srv:
        driver = chrome(downloads)
        try:
            driver.get(srv.url + "/")
            wait = WebDriverWait(driver, 30)
            wait.until(lambda d: d.find_elements(By.ID, "f-size"))
            driver.find_element(By.ID, "content-file").send_keys(str(SAMPLES_DIR / "chelsea.jpg"))
            driver.find_element(By.ID, "style-file").send_keys(str(SAMPLES_DIR / "swirls.png"))
            _fill(driver, "f-size", "128")
            _fill(driver, "f-iterations", "40")
            assert (
                Select(driver.find_element(By.ID, "f-optimizer")).first_selected_option.text
                == "lbfgs"
            )
            driver.execute_script(WATCH_PREVIEW)
            driver.find_element(By.ID, "start").click()
            WebDriverWait(driver, 240, poll_frequency=0.2).until(
                lambda d: d.find_element(By.ID, "status").text.lower() in ("finished", "failed")
            )
            assert driver.find_element(By.ID, "status").text.lower() == "finished", (
                driver.find_element(By.ID, "progress-text").text
            )
            srcs = driver.execute_script("return window.__srcs")
            previews = {s for s in srcs if "preview_000.jpg?v=" in s}
            assert len(previews) >= 2, srcs
            assert srcs[-1].endswith("/result.png")  # the final image replaces the previews
            assert driver.execute_script("return state.data[0].length") >= 5
            assert driver.execute_script(CHART_INK) > 500
            assert "40 iterations" in driver.find_element(By.ID, "progress-text").text
            driver.find_element(By.ID, "download-image").click()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                done = [p for p in downloads.iterdir() if p.suffix == ".png"]
                if done:
                    break
                time.sleep(0.1)
            assert done, list(downloads.iterdir())
            assert decode_png(done[0].read_bytes()).shape == (85, 128, 3)
            cards = driver.find_elements(By.CSS_SELECTOR, "#history .card")
            assert len(cards) == 1 and "finished" in cards[0].text.lower()
        finally:
            driver.quit()
