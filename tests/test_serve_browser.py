"""``fastconv serve`` in a real browser: headless Chromium, driven by selenium.

A SimpleConvNet trained here for one epoch on real MNIST (by ``fastconv
train``) is served in-process; the test draws with pointer actions (a mouse,
a finger, a pen) as a reader would, and reads the page. CI installs Chromium
and its driver from Debian's packages (``apt-get install chromium
chromium-driver``) and selenium; elsewhere, without them, the test skips.
Set FASTCONV_SERVE_SCREENSHOT=FILE.png to keep a picture of the page.
"""
import argparse
import math
import os
import shutil
import threading

import numpy as np
import pytest

from fastconv import cli

webdriver = pytest.importorskip(
    "selenium.webdriver", reason="the browser test needs selenium: pip install selenium")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.actions import interaction  # noqa: E402
from selenium.webdriver.common.actions.action_builder import ActionBuilder  # noqa: E402
from selenium.webdriver.common.actions.pointer_input import PointerInput  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from fastconv.cli.common import load_network  # noqa: E402
from fastconv.serve import make_server  # noqa: E402

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                "google-chrome"))), None)
DRIVER = shutil.which("chromedriver")
if CHROMIUM is None or DRIVER is None:
    pytest.skip("the browser test needs Chromium and chromedriver (Debian: apt-get install "
                "chromium chromium-driver)", allow_module_level=True)

# Small moves: each is a pointermove, as a hand would make them.
STEP_MS = 5


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_dir):
    """A SimpleConvNet after one epoch on the first 20,000 MNIST images (all
    60,000 made this file take 64 s instead of 30 on 2 cores)."""
    out = tmp_path_factory.mktemp("serve_run")
    status = cli.main(["train", "--data", str(mnist_dir), "--no-download", "--out", str(out),
                       "--epochs", "1", "--limit", "20000", "--threads", "2", "--seed", "0",
                       "--quiet"])
    assert status == 0
    args = argparse.Namespace(params=str(out / "params.npz"), model=None, dtype=None)
    network, model = load_network(args)  # through model.json, as the command does
    return network, model


@pytest.fixture(scope="module")
def page(trained, tmp_path_factory):
    network, model = trained
    kept = tmp_path_factory.mktemp("kept")
    server = make_server(network, port=0, save_dir=kept, model=model, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1200,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        driver.get(server.url)
        WebDriverWait(driver, 10).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#filters canvas"))
        yield driver, server, kept
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()
        thread.join(10)


def answers(driver):
    return int(driver.find_element(By.ID, "prediction").get_attribute("data-answers") or 0)


def wait_for_answer(driver, before):
    WebDriverWait(driver, 15).until(lambda d: answers(d) > before)
    return driver.find_element(By.ID, "prediction").text


def clear(driver):
    driver.find_element(By.ID, "clear").click()
    assert driver.find_element(By.ID, "prediction").text == ""


def stroke(driver, points, kind):
    """One stroke through ``points`` (offsets from the pad's centre, in CSS
    pixels) by a pointer of ``kind``: mouse, touch or pen."""
    pad = driver.find_element(By.ID, "pad")
    if kind == "mouse":
        chain = ActionChains(driver, duration=STEP_MS)
        chain.move_to_element_with_offset(pad, *points[0]).click_and_hold()
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            chain.move_by_offset(x1 - x0, y1 - y0)
        chain.release().perform()
        return
    pointer = PointerInput(interaction.POINTER_TOUCH if kind == "touch"
                           else interaction.POINTER_PEN, kind)
    builder = ActionBuilder(driver, mouse=pointer, duration=STEP_MS)
    builder.pointer_action.move_to(pad, *points[0]).pointer_down()
    for x, y in points[1:]:
        builder.pointer_action.move_to(pad, x, y)
    builder.pointer_action.pointer_up()
    builder.perform()


def vertical_line():
    return [(0, y) for y in range(-90, 91, 10)]


def ring():
    # Taller than wide, as people write a 0.
    return [(round(70 * math.sin(2 * math.pi * k / 40)), round(-95 * math.cos(2 * math.pi * k / 40)))
            for k in range(41)]


def painted(driver, selector):
    """How many of the canvases under ``selector`` hold a pixel brighter than black."""
    return driver.execute_script("""
        let n = 0;
        for (const c of document.querySelectorAll(arguments[0])) {
          const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
          for (let i = 0; i < d.length; i += 4) if (d[i] > 0) { n++; break; }
        }
        return n;""", selector)


def test_a_vertical_stroke_is_a_1_and_a_ring_a_0(page):
    driver, server, _ = page
    for points, digit, kind in ((vertical_line(), "1", "mouse"), (ring(), "0", "touch"),
                                (vertical_line(), "1", "pen")):
        clear(driver)
        before = answers(driver)
        stroke(driver, points, kind)
        assert wait_for_answer(driver, before) == digit, kind
        # the bar chart: ten bars, the tallest for the digit shown
        bars = driver.find_elements(By.CSS_SELECTOR, "#probabilities .bar")
        assert [b.get_attribute("data-digit") for b in bars] == [str(k) for k in range(10)]
        best = max(bars, key=lambda b: float(b.get_attribute("data-probability")))
        assert best.get_attribute("data-digit") == digit
        assert sum(float(b.get_attribute("data-probability")) for b in bars) == \
            pytest.approx(1, abs=0.01)
    shot = os.environ.get("FASTCONV_SERVE_SCREENSHOT")
    if shot:
        driver.save_screenshot(shot)


def test_the_input_filters_and_feature_maps_appear(page):
    driver, server, _ = page
    clear(driver)
    before = answers(driver)
    stroke(driver, ring(), "mouse")
    wait_for_answer(driver, before)
    assert painted(driver, "#input-view") == 1
    convs = server.reader.describe()["convolutions"]
    layers = driver.find_elements(By.CSS_SELECTOR, "#feature-maps .layer")
    assert [layer.get_attribute("data-layer") for layer in layers] == convs
    maps = driver.find_elements(By.CSS_SELECTOR, "#feature-maps canvas")
    assert len(maps) == 30 and all(m.is_displayed() for m in maps)
    assert painted(driver, "#feature-maps canvas") >= 20  # a few filters may never fire
    assert len(driver.find_elements(By.CSS_SELECTOR, "#filters canvas")) == 30
    assert painted(driver, "#filters canvas") == 30


def test_an_uploaded_picture_is_read(page, tmp_path):
    from PIL import Image
    driver, _, _ = page
    clear(driver)
    picture = np.full((200, 160), 255, dtype=np.uint8)  # a 1 in pen on paper
    picture[30:170, 74:88] = 20
    path = tmp_path / "one.png"
    Image.fromarray(picture).save(path)
    before = answers(driver)
    driver.find_element(By.ID, "upload").send_keys(str(path))
    assert wait_for_answer(driver, before) == "1"


def test_keep_saves_the_drawing_labelled(page):
    driver, _, kept = page
    clear(driver)
    before = answers(driver)
    stroke(driver, ring(), "mouse")
    wait_for_answer(driver, before)
    driver.find_element(By.CSS_SELECTOR, "#keep-label option[value='0']").click()
    driver.find_element(By.ID, "keep-button").click()
    WebDriverWait(driver, 10).until(
        lambda d: "kept as" in d.find_element(By.ID, "status").text)
    files = sorted(p.relative_to(kept).as_posix() for p in kept.rglob("*") if p.is_file())
    assert len(files) == 1 and files[0].startswith("0/drawing-") and files[0].endswith(".png")


def test_the_page_loaded_nothing_from_elsewhere_and_logged_no_error(page):
    driver, server, _ = page
    loaded = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(url.startswith(server.url) for url in loaded), loaded
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
