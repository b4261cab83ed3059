"""The Evaluations and Graders pages in a real browser: a grader written from a template, checked
and tried on an answer, kept as a draft; an eval created from the form over FAQ rows and run on
the taught custom model and on its base, both runs watched to the end without a reload, and the
report that puts them side by side."""

from __future__ import annotations

import json
from importlib import resources

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.console.conftest import NARROW, WIDE

FINISHED = ("completed", "failed", "canceled")


def test_a_grader_is_written_from_a_template_checked_tried_and_kept_as_a_draft(signed_in, console, shot, load_time):
    driver = signed_in
    driver.get(console.endpoint + "/console/graders")
    assert load_time(driver) < 1000
    driver.execute_script("localStorage.removeItem('tailor.grader-drafts')")
    driver.refresh()
    wait = WebDriverWait(driver, 30)
    editor = wait.until(ready.presence_of_element_located((By.ID, "grader-json")))
    assert json.loads(editor.get_attribute("value"))["type"] == "string_check"  # the first template, loaded

    # A broken definition: the problem is named by its path.
    driver.execute_script("arguments[0].value = arguments[0].value.replace('\"eq\"', '\"equals\"')", editor)
    driver.find_element(By.ID, "grader-validate").click()
    problem = wait.until(ready.visibility_of_element_located((By.CSS_SELECTOR, "#grader-problems .error")))
    assert "grader.operation" in problem.text

    # Back to the template: valid, and it grades the sample answer against the item.
    Select(driver.find_element(By.ID, "grader-start")).select_by_value("starter:string_check")
    driver.find_element(By.ID, "grader-load").click()
    driver.find_element(By.ID, "grader-validate").click()
    wait.until(ready.text_to_be_present_in_element((By.ID, "grader-problems"), "Valid string_check grader"))
    driver.find_element(By.ID, "grader-run").click()
    reward = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#grader-result [data-reward]")))
    assert reward.get_attribute("data-reward") == "1"  # the sample answer equals the item's answer
    sample = driver.find_element(By.ID, "grader-sample")
    sample.clear()
    sample.send_keys("Something else.")
    driver.find_element(By.ID, "grader-run").click()
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#grader-result [data-reward='0']")))

    name = driver.find_element(By.ID, "grader-draft-name")
    name.clear()
    name.send_keys("faq-exact")
    driver.find_element(By.ID, "grader-save").click()
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#grader-drafts [data-draft='faq-exact']")))
    drafts = json.loads(driver.execute_script("return localStorage.getItem('tailor.grader-drafts')"))
    assert drafts["faq-exact"]["type"] == "string_check"
    driver.execute_script("window.scrollTo(0, 0)")
    shot(driver, "graders")
    driver.set_window_size(*NARROW)
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    shot(driver, "graders")
    driver.set_window_size(*WIDE)

    # The Evaluations form offers the draft as a criterion.
    driver.get(console.endpoint + "/console/evaluations")
    options = [o.get_attribute("value") for o in driver.find_elements(By.CSS_SELECTOR, "#criterion-drafts option")]
    assert "draft:faq-exact" in options


def test_an_evaluation_report_opens_with_the_custom_model_beside_its_base(signed_in, console, taught, shot,
                                                                        load_time, tmp_path):
    from tailor import assets

    driver, wait = signed_in, WebDriverWait(signed_in, 30)
    pairs = json.loads(resources.files(assets).joinpath("tailor-faq.json").read_text())[:4]
    assert pairs[0]["question"] == taught.question and pairs[0]["answer"] == taught.answer
    rows = tmp_path / "faq-rows.jsonl"
    rows.write_text("".join(json.dumps({"question": p["question"], "answer": p["answer"]}) + "\n" for p in pairs))

    driver.get(console.endpoint + "/console/evaluations")
    assert load_time(driver) < 1000
    form = driver.find_element(By.ID, "create-eval")
    if form.get_attribute("open") is None:
        form.find_element(By.TAG_NAME, "summary").click()
    name = driver.find_element(By.NAME, "name")
    name.clear()
    name.send_keys("taught vs base")
    criteria = json.loads(driver.find_element(By.ID, "eval-criteria-json").get_attribute("value"))
    assert [c["type"] for c in criteria] == ["string_check"] and criteria[0]["reference"] == "{{item.answer}}"
    driver.find_element(By.ID, "eval-rows-file").send_keys(str(rows))  # an uploaded file fills the rows
    wait.until(lambda d: taught.question in d.find_element(By.ID, "eval-rows").get_attribute("value"))
    driver.find_element(By.NAME, "system").send_keys(taught.system)
    tokens = driver.find_element(By.NAME, "max_completion_tokens")
    tokens.clear()
    tokens.send_keys("72")  # a taught answer is under 60 tokens; the base need not ramble longer
    for value in (taught.model_arn, "tailor.tiny"):
        driver.find_element(By.CSS_SELECTOR, f'input[name="models"][value="{value}"]').click()
    shot(driver, "evaluations-create")
    driver.find_element(By.ID, "eval-create").click()
    wait.until(ready.url_contains("created="))

    # Both runs are watched to the end on this page, without a reload.
    driver.execute_script("window.notReloaded = true;")
    runs = driver.find_elements(By.CSS_SELECTOR, "article.eval.created tr[data-run]")
    assert len(runs) == 2
    assert [r.find_element(By.CSS_SELECTOR, '[data-cell="name"]').text for r in runs] == [taught.model_name,
                                                                                           "tailor.tiny"]
    WebDriverWait(driver, 300, poll_frequency=0.5).until(
        lambda d: all(r.get_attribute("data-status") in FINISHED for r in runs))
    assert driver.execute_script("return window.notReloaded === true;")
    assert [r.get_attribute("data-status") for r in runs] == ["completed", "completed"]
    custom, base = (r.find_element(By.CSS_SELECTOR, '[data-cell="counts"]').text for r in runs)
    passed = [int(text.split("/")[0]) for text in (custom, base)]
    assert passed[0] > passed[1] and custom.endswith("/4 passed"), (custom, base)
    shot(driver, "evaluations")
    driver.set_window_size(*NARROW)
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    shot(driver, "evaluations")
    driver.set_window_size(*WIDE)

    # The report: both models side by side, the taught answer among the custom model's.
    runs[0].find_element(By.CSS_SELECTOR, "a.report-link").click()
    wait.until(ready.url_contains("/report?signature="))
    page = driver.find_element(By.TAG_NAME, "body").text
    assert taught.model_name in page and "tailor.tiny" in page
    assert taught.question in page and taught.answer in page
    shot(driver, "evaluation-report")
