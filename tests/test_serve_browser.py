"""The page at `/` in a real browser: headless Chromium (Debian's package) driven by Selenium with
Debian's chromium-driver; no browser is downloaded. It types a sentence, waits for the
translation, opens the attention heatmap and saves a screenshot.

CI (CI=true) installs Chromium (.ci/run) and fails without it; elsewhere the test skips.
SERVE_SCREENSHOT=docs/serving-page.png keeps the screenshot (the one in docs/serving.md).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_helpers import Server, served_checkpoint

pytestmark = pytest.mark.slow
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromedriver")
SENTENCE = "A man runs on the street.\nThe small dog runs in the park with a cat."


def _require_chromium() -> None:
    missing = [path for path in CHROMIUM if not Path(path).exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (the dev extra)")
    if missing:
        message = (
            f"no headless browser: {', '.join(missing)} missing "
            "(apt-get install chromium chromium-driver)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI installs them in .ci/run.")
        pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    _require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM[0]
    profile = tempfile.mkdtemp(prefix="tmt-chromium-")
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1000,1300",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMIUM[1]), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def test_the_page_translates_and_draws_the_heatmap(
    browser, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    server = Server(str(served_checkpoint(tmp_path_factory)))
    try:
        wait = WebDriverWait(browser, 30)
        browser.get(server.url + "/")
        wait.until(lambda d: d.find_element(By.ID, "direction").get_attribute("value") == "en-de")
        browser.find_element(By.ID, "source").send_keys(SENTENCE)
        browser.find_element(By.ID, "translate").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".translation")) == 2)
        shown = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".translation")]
        assert all(text.strip() for text in shown)
        assert browser.find_elements(By.CSS_SELECTOR, "table.nbest tr")  # the n-best lists
        browser.find_elements(By.CSS_SELECTOR, ".show-attention")[0].click()
        heatmap = wait.until(ec.visibility_of_element_located((By.ID, "heatmap")))
        assert int(heatmap.get_attribute("data-rows")) >= 2
        assert int(heatmap.get_attribute("data-columns")) >= 2
        assert browser.find_element(By.ID, "status").text == ""
        screenshot = Path(os.environ.get("SERVE_SCREENSHOT") or tmp_path / "page.png")
        assert browser.save_screenshot(str(screenshot))
        assert screenshot.stat().st_size > 10_000
    finally:
        assert server.stop()[0] == 0
