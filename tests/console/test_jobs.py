"""The Jobs page in a real browser: create a fine-tuning job from the form; watch the loss chart
gain points while it trains; download its files."""

from __future__ import annotations

import json
import re

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.console.conftest import NARROW, WIDE

# 20 tiny sums, batch 4, 20 epochs: 100 short steps (a few seconds), watched every 0.2 s.
RECORDS = [{"system": "You answer sums.", "messages": [{"role": "user", "content": f"What is {n} plus {n + 1}?"},
                                                        {"role": "assistant", "content": f"{2 * n + 1}."}]}
           for n in range(20)]


def _type(driver, name: str, text: str) -> None:
    field = driver.find_element(By.NAME, name)
    field.clear()
    field.send_keys(text)


def _error(driver, name: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, f'[data-error-for="{name}"]').text


def test_create_a_fine_tuning_job_from_the_form_and_watch_its_loss_curve_grow(signed_in, console, shot, load_time):
    driver = signed_in
    console.put("s3://alice-console-jobs/train.jsonl", RECORDS)
    driver.get(console.endpoint + "/console/jobs/new?kind=FINE_TUNING")
    assert load_time(driver) < 1000
    Select(driver.find_element(By.NAME, "base_model")).select_by_value("tailor.tiny")
    WebDriverWait(driver, 20).until(lambda d: d.find_element(By.ID, "hyperparameters").get_attribute("data-for")
                                    == "tailor.tiny")
    epochs = driver.find_element(By.NAME, "hp.epochCount")
    # Each hyperparameter shows its range and default.
    assert (epochs.get_attribute("min"), epochs.get_attribute("max"), epochs.get_attribute("placeholder")) == (
        "1", "100", "25")
    assert "1 – 100; default 25" in driver.find_element(By.ID, "help-epochCount").text

    _type(driver, "name", "console-sums")
    _type(driver, "model_name", "console-sums-model")
    _type(driver, "training_uri", "s3://alice-console-jobs/train.jsonl")
    _type(driver, "output_uri", "s3://alice-console-jobs/output/")
    _type(driver, "hp.epochCount", "500")  # out of range: said under the input while typing
    WebDriverWait(driver, 10).until(lambda d: "must be between 1 and 100; got 500" in _error(d, "hp.epochCount"))
    assert epochs.get_attribute("aria-invalid") == "true"
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", epochs)
    shot(driver, "jobs-new-error")
    _type(driver, "hp.epochCount", "20")
    _type(driver, "hp.batchSize", "4")
    WebDriverWait(driver, 10).until(lambda d: _error(d, "hp.epochCount") == "")
    estimate = WebDriverWait(driver, 30).until(
        lambda d: (text := d.find_element(By.ID, "estimate-text").text).startswith("Estimated peak memory") and text)
    assert re.search(r"micro-batch \d+", estimate)
    driver.execute_script("document.getElementById('estimate').scrollIntoView({block: 'center'});")
    shot(driver, "jobs-new")

    driver.find_element(By.ID, "submit-job").click()
    WebDriverWait(driver, 30).until(ready.url_matches(r"/console/jobs/[0-9a-z]+$"))
    job_id = driver.current_url.rsplit("/", 1)[1]
    driver.get(driver.current_url + "?interval=0.2")  # while the worker starts: the stream reads every 0.2 s

    # The loss chart gains points while the job trains, without a reload.
    chart = driver.find_element(By.ID, "loss-chart")
    growth: list[int] = []

    def watch(d) -> bool:
        status = d.find_element(By.ID, "job-status").text
        points = int(chart.get_attribute("data-points"))
        if status == "InProgress" and points and (not growth or points > growth[-1]):
            growth.append(points)
        return status in ("Completed", "Failed", "Stopped")

    WebDriverWait(driver, 240, poll_frequency=0.1).until(watch)
    assert driver.find_element(By.ID, "job-status").text == "Completed", driver.find_element(By.ID, "job-failure").text
    assert len(growth) >= 3, growth  # seen with points, then growing at least twice while InProgress
    WebDriverWait(driver, 10).until(lambda d: int(chart.get_attribute("data-points")) == 100)
    assert chart.find_elements(By.CSS_SELECTOR, "canvas")  # drawn by uPlot
    assert " of 100" in driver.find_element(By.ID, "job-progress").text
    # The ended job's row says how far it got (not the last once-a-second progress write).
    page = driver.execute_async_script("fetch(location.pathname).then((r) => r.text()).then(arguments[0]);")
    assert "step 100 of 100" in page

    # The files to download, once it has ended: each answers 200 (to its owner).
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, '#job-files a[href$="/loss.png"]'))
    links = [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "#job-files a")]
    assert {link.rsplit("/", 1)[1] for link in links} >= {"training.csv", "results.csv", "loss.png"}
    statuses = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "Promise.all(arguments[0].map((url) => fetch(url).then((r) => r.status))).then(done);", links)
    assert statuses == [200] * len(links)
    shot(driver, "jobs-job")
    driver.execute_script("document.getElementById('status-title').scrollIntoView();")
    shot(driver, "jobs-job-details")
    driver.set_window_size(*NARROW)
    try:
        driver.get(console.endpoint + f"/console/jobs/{job_id}")
        WebDriverWait(driver, 20).until(lambda d: d.find_element(By.ID, "loss-chart").get_attribute("data-points")
                                        == "100")
        shot(driver, "jobs-job")
        driver.get(console.endpoint + "/console/jobs")
        assert driver.find_element(By.CSS_SELECTOR, f'#jobs-table a[href="/console/jobs/{job_id}"]')
        shot(driver, "jobs")
    finally:
        driver.set_window_size(*WIDE)
    driver.get(console.endpoint + "/console/jobs?name=console-sums")
    assert load_time(driver) < 1000
    assert driver.find_element(By.CSS_SELECTOR, f'#jobs-table tr[data-job="{job_id}"] .status').text == "Completed"
    shot(driver, "jobs")


def test_the_reinforcement_form_offers_the_drafts_of_the_graders_page(signed_in, console, shot):
    driver = signed_in
    driver.get(console.endpoint + "/console/jobs/new?kind=REINFORCEMENT_FINE_TUNING")
    draft = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
             "reference": "{{item.answer}}", "operation": "eq"}
    driver.execute_script("localStorage.setItem('tailor.grader-drafts', JSON.stringify({exact: arguments[0]}));", draft)
    driver.refresh()
    Select(driver.find_element(By.ID, "grader-drafts")).select_by_value("exact")
    assert json.loads(driver.find_element(By.NAME, "grader_definition").get_attribute("value")) == draft
    assert driver.find_element(By.CSS_SELECTOR, 'input[name="grader_source"][value="definition"]').is_selected()
    assert driver.find_element(By.NAME, "hp.trainingSamplePerPrompt").get_attribute("placeholder") == "8"
    driver.execute_script("document.getElementById('grader-fieldset').scrollIntoView();")
    shot(driver, "jobs-new-rft")
    driver.set_window_size(*NARROW)
    try:
        driver.refresh()
        shot(driver, "jobs-new-rft")
    finally:
        driver.set_window_size(*WIDE)
    driver.execute_script("localStorage.removeItem('tailor.grader-drafts');")
