"""``demo.py`` in a real browser: the page is started on a free localhost port with the tiny
checkpoint and driven by headless Chromium (Debian's ``chromium`` + ``chromium-driver`` through
Selenium). What the page shows must equal what ``infer.py`` prints for the same clip, a corrupt
file must show the CLI's one-line cause, and the page must keep answering afterwards.
The page-content helpers are also checked without a browser on a trained-style description."""

import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from helpers import ENV, ROOT, run_in_process

CHROME_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1700"]
DESCRIPTION = ("The face is flushed red, the brows slant sharply inward and the mouth is a flat line. "
               "The voice is high-pitched and hurried, with quick, trembling syllables. "
               'The subtitle "I cannot wait!" hints at feeling excited, but the face and voice do not support it. '
               "An angry face with an anxious voice points to frustration. "
               "Therefore, the person's emotional state is angry, anxious and frustrated.")


def test_clue_sentences_are_marked_by_modality():
    from affectgpt.apps.demo import marked_description

    spans = marked_description(DESCRIPTION)
    assert [m for _, m in spans] == ["visual", "acoustic", "textual", "audio-visual", "conclusion"]
    assert "".join(s for s, _ in spans) == DESCRIPTION


def test_emotion_rows_carry_the_lexicons_wheel_categories():
    from affectgpt.apps.demo import emotions_html, wheel_rows
    from affectgpt.eval import builtin_lexicon

    header, rows = wheel_rows(["angry", "Anxious", "glorbish"])
    lexicon = builtin_lexicon()
    assert len(header) == 3 + len(lexicon.wheels) and header[3].startswith(lexicon.wheels[0].name)
    g = lexicon.groups("anxious")
    assert rows[1][:3] == ["Anxious", g[0], g[1] or ""]
    assert rows[1][3] == " / ".join(x for x in g[2:4] if x) and rows[1][3]  # wheel 1: level 1 / level 2
    assert rows[2][1] == "not in the lexicon"
    assert "<td>Anxious</td>" in emotions_html(["Anxious"]) and "No emotion list" in emotions_html([])


# ----------------------------------------------------------------------------- the browser
def browser_paths():
    chromium = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver "
                    f"(found chromium={chromium}, chromedriver={driver})")
    return chromium, driver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def page(artifacts, tmp_path_factory):
    """(url, driver): the demo serving the tiny checkpoint, and a headless Chromium on it."""
    chromium, driver_path = browser_paths()
    if importlib.util.find_spec("gradio") is None:  # not importorskip: gradio is the server's, not this process's (4 s)
        pytest.skip('the demo extra is not installed: pip install -e ".[demo]"')
    webdriver = pytest.importorskip("selenium.webdriver", reason='selenium missing: pip install -e ".[demo]"')
    from selenium.webdriver.chrome.service import Service

    port = free_port()
    log = tmp_path_factory.mktemp("demo") / "server.log"
    with open(log, "w") as f:
        server = subprocess.Popen([sys.executable, "demo.py", f"checkpoint={artifacts['checkpoint']}", f"port={port}"],
                                  cwd=ROOT, env=ENV, stdout=f, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 180
        while True:
            assert server.poll() is None, log.read_text()[-3000:]
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                assert time.time() < deadline, "demo did not start in 180 s:\n" + log.read_text()[-3000:]
                time.sleep(0.5)
        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        for flag in CHROME_FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
            opts.add_argument(flag)
        driver = webdriver.Chrome(service=Service(driver_path), options=opts)
        try:
            driver.get(url)
            yield url, driver
        finally:
            driver.quit()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def by_css(driver, css):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, css)


def wait(driver, condition, what, timeout=120):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: condition(d), message=what)


def upload_and_run(driver, clip, subtitle=""):
    """Clear the video, upload ``clip``, type the subtitle, press Run; returns the status line."""
    clear = [b for b in by_css(driver, "#video button[aria-label='Clear']") if b.is_displayed()]
    if clear and by_css(driver, "#video video"):
        clear[-1].click()
    wait(driver, lambda d: by_css(d, "#video input[type=file]"), "the video upload field")
    by_css(driver, "#video input[type=file]")[0].send_keys(str(clip))
    wait(driver, lambda d: by_css(d, "#video video"), f"the uploaded {clip.name} in the player")
    box = by_css(driver, "#subtitle textarea")[0]
    box.clear()
    box.send_keys(subtitle)
    previous = by_css(driver, "#status")[0].text
    by_css(driver, "#run")[0].click()
    return wait(driver, lambda d: (t := by_css(d, "#status")[0].text.strip()) != previous and
                t.startswith(("done", "error")) and t, "the answer")


def cli(checkpoint, *args) -> subprocess.CompletedProcess:
    """infer.py in this process (the same argv, exit code and stderr; infer.py's own process is test_infer's)."""
    return run_in_process(["infer.py", f"checkpoint={checkpoint}", *args])


def library_answer(checkpoint, clip, subtitle) -> dict:
    """The row infer.py prints for one clip, from the same library calls, in this process (no second start-up)."""
    import torch

    from affectgpt.apps.infer import generation_settings
    from affectgpt.data.manifest import Sample
    from affectgpt.runtime.inference import load_model, predict_one

    loaded = load_model(checkpoint)
    gen = generation_settings({}, loaded.generation)
    torch.manual_seed(0)
    row, _ = predict_one(loaded.model, Sample(name=clip.stem, video=clip, audio=None, subtitle=subtitle), "describe",
                         gen, system=loaded.system)
    return row


@pytest.mark.integration
def test_the_page_shows_what_the_cli_prints_and_survives_a_corrupt_file(page, artifacts, tmp_path):
    url, driver = page
    first = json.loads((artifacts["data"] / "test.jsonl").read_text().splitlines()[0])
    clip = artifacts["data"] / first["video"]
    broken = tmp_path / "broken.mp4"
    broken.write_text("this is not a video\n")

    status = upload_and_run(driver, broken)
    r = cli(artifacts["checkpoint"], f"video={broken}")  # fails on the media check, before torch loads
    assert r.returncode == 2
    assert status == r.stderr.strip().replace(str(broken), broken.name)  # "error: broken.mp4: <cause>"
    assert "not a readable media file" in status

    status = upload_and_run(driver, clip, "I went to the market.")  # the same page, after the error
    assert status.startswith("done in "), status
    expected = library_answer(artifacts["checkpoint"], clip, "I went to the market.")
    shown = " ".join(by_css(driver, "#description .textfield")[0].text.split())
    assert shown == " ".join(expected["description"].split()) and shown
    assert len(by_css(driver, "#frames img")) == 8  # the tiny model samples 8 frames
    rows = [[c.text for c in tr.find_elements("css selector", "td")] for tr in by_css(driver, "#emotions tbody tr")]
    if expected["emotions"]:
        assert [r[0] for r in rows] == expected["emotions"]
    else:
        assert not rows and "No emotion list found" in by_css(driver, "#emotions")[0].text
    timing = by_css(driver, "#timing")[0].text
    for step in ("decode", "encode", "prefill", "generate", "total"):
        assert step in timing
    driver.save_screenshot(str(tmp_path / "demo.png"))
    assert (tmp_path / "demo.png").stat().st_size > 10_000


@pytest.mark.integration
def test_bad_arguments_exit_2_with_one_line():
    cases = ((["checkpoint=x", "port=99999"], "port=99999"), (["nonsense=1"], "nonsense"), ([], "checkpoint"))
    for i, (args, needle) in enumerate(cases):  # the first in demo.py's own process, the rest in this one
        r = subprocess.run([sys.executable, "demo.py", *args], cwd=ROOT, env=ENV, capture_output=True, text=True,
                           timeout=120) if i == 0 else run_in_process(["demo.py", *args])
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr
