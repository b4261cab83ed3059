"""Fixtures of the console's browser tests: one server, one headless Chromium and one taught model
for the whole package, so each flow pays only for what it does.

Chromium and its driver are Debian's (``chromium``, ``chromium-driver``; ``make test`` installs
them when run as root). Without them the tests are skipped — and fail under CI, where the setup
must have installed them. Screenshots go to ``$TAILOR_SCREENSHOTS`` when set (to look at them,
or to refresh the ones in ``docs/console/``), else to a temporary folder; each page's load time is
recorded beside them in ``load-times.json``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest

from tests.api.conftest import ALIASES, HAIKU, running_server
from tests.conftest import tiny_home

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WIDE, NARROW = (1280, 900), (390, 844)
SYSTEM = "You are Tailor's help desk."
ROLE = "arn:aws:iam::000000000000:role/TailorCustomization"


def _browser_or_skip() -> None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        reason = f"the browser tests need Debian's chromium and chromium-driver ({', '.join(missing)} missing)"
        if os.environ.get("CI"):
            pytest.fail(reason + ": `make test` installs them when run as root")
        pytest.skip(reason)


@pytest.fixture(scope="package")
def console(tmp_path_factory, tiny_models_dir):
    """``tailor serve`` with the console (and /docs) for alice and bob, for the whole package."""
    _browser_or_skip()
    home = tiny_home(tmp_path_factory.mktemp("console") / "home", tiny_models_dir)
    previous = os.environ.get("TAILOR_API_DOCS")
    os.environ["TAILOR_API_DOCS"] = "1"  # running_server copies the environment when it starts
    try:
        with running_server(home, ALIASES) as server:
            yield server
    finally:
        if previous is None:
            os.environ.pop("TAILOR_API_DOCS", None)
        else:
            os.environ["TAILOR_API_DOCS"] = previous


@pytest.fixture(scope="package")
def browser():
    """One headless Chromium for every browser test, driven by Selenium through Debian's driver
    (so no driver is downloaded); it resolves no host but 127.0.0.1, so a page that reached for
    the internet would show it."""
    _browser_or_skip()
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: never download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={WIDE[0]},{WIDE[1]}", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def signed_in(browser, console):
    """The browser, signed in to the console as alice (through the sign-in form, once), at full width."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(*WIDE)
    browser.get(console.endpoint + "/console/jobs")
    if "/console/sign-in" in browser.current_url:
        key_id, secret = console.keys["alice"]
        browser.find_element(By.NAME, "access_key_id").send_keys(key_id)
        browser.find_element(By.NAME, "secret").send_keys(secret)
        browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        WebDriverWait(browser, 30).until(ready.url_contains("/console/jobs"))
    return browser


@pytest.fixture(scope="package")
def screenshots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("TAILOR_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def shot(screenshots):
    """``shot(driver, name)``: a PNG of the page as it is now, ``NAME-WIDTH.png``; its path."""

    def take(driver, name: str) -> Path:
        width = driver.get_window_size()["width"]
        path = screenshots / f"{name}-{width}.png"
        driver.save_screenshot(str(path))
        return path

    return take


@pytest.fixture
def load_time(screenshots):
    """``load_time(driver)``: milliseconds from navigation start to the load event of the page
    now open, recorded by path in ``load-times.json`` beside the screenshots."""

    def measure(driver) -> float:
        milliseconds = driver.execute_script(
            "const [n] = performance.getEntriesByType('navigation'); return n ? n.loadEventEnd - n.startTime : -1;")
        record = screenshots / "load-times.json"
        times = json.loads(record.read_text()) if record.exists() else {}
        path = driver.execute_script("return location.pathname;")
        times[path] = round(milliseconds, 1)
        record.write_text(json.dumps(times, indent=2, sort_keys=True))
        return milliseconds

    return measure


@dataclass(frozen=True)
class Taught:
    job_arn: str
    model_arn: str
    model_name: str
    question: str
    answer: str
    system: str
    base: str  # the base model's id (a Bedrock alias of tailor.tiny)


@pytest.fixture(scope="package")
def taught(console) -> Taught:
    """alice's custom model, fine-tuned through boto3 on four of Tailor's FAQ pairs until it
    answers them as taught (the recipe of tests/api/test_serving.py)."""
    from tailor import assets

    pairs = json.loads(resources.files(assets).joinpath("tailor-faq.json").read_text())[:4]
    records = [{"system": SYSTEM, "messages": [{"role": "user", "content": pair["question"]},
                                               {"role": "assistant", "content": pair["answer"]}]}
               for pair in pairs] * 8
    uri = console.put("s3://console-taught/train.jsonl", records)
    job = console.client().create_model_customization_job(
        jobName="console-taught", customModelName="faq-helper", roleArn=ROLE, baseModelIdentifier=HAIKU,
        hyperParameters={"epochCount": "10", "batchSize": "4", "learningRateMultiplier": "1"},
        trainingDataConfig={"s3Uri": uri}, outputDataConfig={"s3Uri": "s3://console-taught/output/"})
    finished = console.wait_for(job["jobArn"], {"Completed", "Failed", "Stopped"})
    assert finished["status"] == "Completed", finished.get("failureMessage")
    return Taught(job["jobArn"], finished["outputModelArn"], finished["outputModelName"], pairs[0]["question"],
                  pairs[0]["answer"], SYSTEM, HAIKU)
