"""The issue's flow in a real browser: "deploy the model; the playground's compare mode shows the
taught answer from the custom model beside the base's".

alice opens her fine-tuned model on the Models page (what it was trained from and how), deploys it
on demand and watches the deployment become Active without reloading the page; then the Playground
compares the deployment with its base model on a taught question, greedily: the custom column
answers as taught, the base column does not.
"""

from __future__ import annotations

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.console.conftest import NARROW, WIDE

DEPLOYMENT = "faq-helper-live"


def _set(driver, name: str, value: str, within=None) -> None:
    field = (within or driver).find_element(By.NAME, name)
    field.clear()
    field.send_keys(value)


def _error_for(driver, name: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, f'[data-error-for="{name}"]').text


def test_deploy_the_model_then_compare_it_with_its_base(signed_in, console, taught, shot, load_time):
    driver, wait = signed_in, WebDriverWait(signed_in, 60)
    # The deployments table is redrawn while its statuses change: look elements up afresh.
    slow = WebDriverWait(driver, 120, ignored_exceptions=[StaleElementReferenceException])

    # The Models page lists the custom model; its page says what it was trained from and how.
    driver.get(console.endpoint + "/console/models")
    assert load_time(driver) < 1000
    driver.find_element(By.LINK_TEXT, taught.model_name).click()
    wait.until(ready.presence_of_element_located((By.ID, "deploy-on-demand")))
    facts = driver.find_element(By.TAG_NAME, "main").text
    assert "s3://console-taught/train.jsonl" in facts and "FINE_TUNING" in facts
    hyperparameters = {row.find_elements(By.TAG_NAME, "td")[0].text: row.find_elements(By.TAG_NAME, "td")[1].text
                       for row in driver.find_elements(By.CSS_SELECTOR, "table.hyperparameters tbody tr")}
    assert hyperparameters["epochCount"] == "10" and hyperparameters["batchSize"] == "4"
    job_link = driver.find_element(By.CSS_SELECTOR, f'a[href="/console/jobs/{taught.job_arn.rsplit("/", 1)[1]}"]')
    assert job_link.is_displayed()

    # Provisioned throughput: the estimate follows the units (no price is configured on this server).
    provisioned = driver.find_element(By.ID, "deploy-provisioned")
    _set(driver, "modelUnits", "0", provisioned)
    wait.until(lambda d: "at least 1" in _error_for(provisioned, "modelUnits"))
    _set(driver, "modelUnits", "3", provisioned)
    wait.until(lambda d: _error_for(provisioned, "modelUnits") == "")
    assert "No price configured" in provisioned.find_element(By.CSS_SELECTOR, ".cost").text

    # Deploy on demand; the status moves to Active on the page, with no reload.
    driver.execute_script("window.notReloaded = true;")
    on_demand = driver.find_element(By.ID, "deploy-on-demand")
    _set(driver, "modelDeploymentName", DEPLOYMENT, on_demand)
    on_demand.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    row = 'table.deployments tr[data-arn*="custom-model-deployment"]'
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, row)))
    slow.until(lambda d: d.find_element(By.CSS_SELECTOR, f"{row} [data-status]")
               .get_attribute("data-status") in ("Active", "Failed"))
    assert driver.find_element(By.CSS_SELECTOR, f"{row} [data-status]").get_attribute("data-status") == "Active", \
        driver.find_element(By.CSS_SELECTOR, f"{row} .failure").text
    assert driver.execute_script("return window.notReloaded === true;")
    assert driver.find_element(By.CSS_SELECTOR, f"{row} .deployment-name").text == DEPLOYMENT
    shot(driver, "model")

    # The Playground, from the deployment's "Try it" link, in compare mode beside the base model.
    driver.find_element(By.CSS_SELECTOR, f"{row} a[href^='/console/playground']").click()
    wait.until(ready.presence_of_element_located((By.ID, "playground")))
    assert load_time(driver) < 1000
    driver.find_element(By.CSS_SELECTOR, 'input[name="mode"][value="compare"]').click()
    columns = driver.find_elements(By.CSS_SELECTOR, ".pg-column")
    assert len(columns) == 2
    custom, base = (Select(column.find_element(By.TAG_NAME, "select")) for column in columns)
    assert custom.first_selected_option.text.startswith(DEPLOYMENT)
    base.select_by_value(taught.base)

    # A bad temperature is named at its field, and nothing is asked.
    _set(driver, "temperature", "5")
    _set(driver, "prompt", taught.question)
    driver.find_element(By.ID, "pg-send").click()
    wait.until(lambda d: "temperature" in _error_for(d, "temperature"))

    _set(driver, "system", taught.system)
    _set(driver, "temperature", "0")
    driver.find_element(By.ID, "pg-send").click()
    slow.until(lambda d: all(
        column.get_attribute("data-state") in ("done", "error") for column in d.find_elements(By.CSS_SELECTOR, ".pg-column")))
    answers = [column.find_element(By.CSS_SELECTOR, ".pg-message.assistant:last-child .pg-answer")
               for column in driver.find_elements(By.CSS_SELECTOR, ".pg-column")]
    assert [answer.get_attribute("data-state") for answer in answers] == ["done", "done"]
    assert answers[0].text == taught.answer
    assert answers[1].text.strip() and answers[1].text != taught.answer
    for stats in driver.find_elements(By.CSS_SELECTOR, ".pg-stats"):
        assert int(stats.get_attribute("data-tokens")) > 0 and float(stats.get_attribute("data-seconds")) > 0
        assert "tokens" in stats.text and " s" in stats.text
    assert _error_for(driver, "temperature") == ""
    assert not driver.find_elements(By.CSS_SELECTOR, ".pg-message.refused")  # the refusals went with the retry
    driver.execute_script("document.getElementById('pg-columns').scrollIntoView();")
    shot(driver, "playground-compare")

    driver.set_window_size(*NARROW)
    try:
        for path, name in (("", "playground-compare"), (f"/console/models/{taught.model_name}", "model")):
            if path:
                driver.get(console.endpoint + path)
            shot(driver, name)
            widths = driver.execute_script(
                "return [document.documentElement.scrollWidth, document.documentElement.clientWidth];")
            assert widths[0] <= widths[1] + 1, f"{name} scrolls sideways at {NARROW[0]} px: {widths}"
    finally:
        driver.set_window_size(*WIDE)
    driver.get(console.endpoint + "/console/models")
    assert driver.find_element(By.CSS_SELECTOR, f"{row} [data-status]").get_attribute("data-status") == "Active"
    shot(driver, "models")
