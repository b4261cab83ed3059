"""The Datasets page in a real browser: upload and validate a dataset with planted errors, then the
training view of a valid one marks exactly the assistant text."""

from __future__ import annotations

import json

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from tests.console.conftest import NARROW, WIDE
from tests.services.test_datasets import planted

ANSWERS = ["Tailor trains models on your machines.", "Yes, with LoRA or full weights.", "It speaks Bedrock and OpenAI."]


def watch_for_working(driver) -> None:
    """Note whether the status line says "working" at any moment (a warm engine answers at once)."""
    driver.execute_script("""
        window.sawWorking = false;
        const status = document.getElementById("check-status");
        new MutationObserver(() => { if (status.textContent.includes("working")) window.sawWorking = true; })
            .observe(status, {childList: true, characterData: true, subtree: true});""")


def upload(driver, uri: str, path) -> None:
    form = driver.find_element(By.ID, "upload-form")
    form.find_element(By.NAME, "uri").clear()
    form.find_element(By.NAME, "uri").send_keys(uri)
    form.find_element(By.NAME, "file").send_keys(str(path))
    driver.find_element(By.ID, "upload-button").click()
    WebDriverWait(driver, 30).until(ready.text_to_be_present_in_element((By.ID, "upload-status"), f"Uploaded {uri}"))
    WebDriverWait(driver, 30).until(ready.presence_of_element_located(
        (By.CSS_SELECTOR, f'#dataset-list button[data-action="validate"][data-uri="{uri}"]')))


def test_upload_validate_planted_errors_then_the_training_view(signed_in, console, shot, load_time, tmp_path):
    driver = signed_in
    driver.get(console.endpoint + "/console/datasets")
    assert load_time(driver) < 1000
    broken = tmp_path / "planted.jsonl"
    broken.write_text(planted())
    upload(driver, "s3://alice-console/planted.jsonl", broken)

    driver.find_element(By.CSS_SELECTOR, '#dataset-list button[data-action="validate"]'
                                         '[data-uri="s3://alice-console/planted.jsonl"]').click()
    WebDriverWait(driver, 30).until(ready.presence_of_element_located((By.CSS_SELECTOR, "table.problems tbody tr")))
    rows = driver.find_elements(By.CSS_SELECTOR, "table.problems tbody tr")
    seen = [(row.get_attribute("data-line"), row.get_attribute("data-field")) for row in rows]
    assert seen == [("4", "messages[0].role"), ("7", "messages[1].content"), ("10", "")]
    cells = [cell.text for cell in rows[0].find_elements(By.TAG_NAME, "td")]
    assert cells[:3] == ["s3://alice-console/planted.jsonl", "4", "messages[0].role"] and "robot" in cells[3]
    assert "3 problems in 12 records" in driver.find_element(By.CSS_SELECTOR, "#validation .summary").text
    shot(driver, "datasets-validate")

    valid = tmp_path / "valid.jsonl"
    valid.write_text("".join(json.dumps({"system": "Be brief.", "messages": [
        {"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": answer}]}) + "\n"
        for i, answer in enumerate(ANSWERS * 3)))
    upload(driver, "s3://alice-console/valid.jsonl", valid)
    watch_for_working(driver)
    driver.find_element(By.CSS_SELECTOR, '#dataset-list button[data-action="preview"]'
                                         '[data-uri="s3://alice-console/valid.jsonl"]').click()
    WebDriverWait(driver, 120).until(ready.presence_of_element_located((By.CSS_SELECTOR, "#training-body .record")))
    assert driver.execute_script("return window.sawWorking;")  # the engine may be starting: seconds
    records = driver.find_elements(By.CSS_SELECTOR, "#training-body .record")
    assert len(records) == 9
    for record, answer in zip(records, ANSWERS * 3):
        marks = [mark.text for mark in record.find_elements(By.CSS_SELECTOR, "mark.loss")]
        assert marks == [answer + "<|end|>"]  # only the assistant's text (and its end of turn) is learned
        context = record.find_element(By.CSS_SELECTOR, "pre.rendered").text
        assert "Be brief." in context and "Question" in context
        counts = record.find_element(By.CSS_SELECTOR, ".counts")
        tokens, targets = int(counts.get_attribute("data-tokens")), int(counts.get_attribute("data-targets"))
        assert tokens > targets > 0 and f"{targets} targets" in counts.text
    assert driver.find_element(By.ID, "validation").get_attribute("hidden")  # the other file's problems went
    shot(driver, "datasets")
    driver.set_window_size(*NARROW)
    try:
        driver.execute_script("document.getElementById('training-view').scrollIntoView()")
        shot(driver, "datasets")
    finally:
        driver.set_window_size(*WIDE)


def test_a_custom_model_renders_with_its_base_tokenizer(signed_in, console, taught):
    from selenium.webdriver.support.ui import Select

    console.put("s3://alice-console/custom.jsonl", [
        {"messages": [{"role": "user", "content": taught.question}, {"role": "assistant", "content": taught.answer}]}])
    driver = signed_in
    driver.get(console.endpoint + "/console/datasets")
    Select(driver.find_element(By.ID, "check-model")).select_by_value(taught.model_arn)
    driver.find_element(By.ID, "check-uri").send_keys("s3://alice-console/custom.jsonl")
    driver.find_element(By.ID, "preview-button").click()
    WebDriverWait(driver, 120).until(ready.presence_of_element_located((By.CSS_SELECTOR, "#training-body .record")))
    marks = [mark.text for mark in driver.find_elements(By.CSS_SELECTOR, "#training-body mark.loss")]
    assert marks == [taught.answer + "<|end|>"]
    assert taught.model_name in driver.find_element(By.ID, "training-subject").text
