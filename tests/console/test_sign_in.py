"""Signing in to the console in a real browser, and the API docs page working offline."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait


def test_a_wrong_secret_is_refused_and_the_right_one_opens_the_console(browser, console, shot, load_time):
    browser.delete_all_cookies()
    browser.get(console.endpoint + "/console/jobs")
    assert "/console/sign-in" in browser.current_url  # no session: sent to the form
    key_id, secret = console.keys["alice"]

    def sign_in(with_secret: str) -> None:
        browser.find_element(By.NAME, "access_key_id").send_keys(key_id)
        browser.find_element(By.NAME, "secret").send_keys(with_secret)
        browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()

    sign_in("not-the-secret")
    error = WebDriverWait(browser, 30).until(ready.visibility_of_element_located((By.ID, "sign-in-error")))
    assert "Sign-in failed" in error.text
    shot(browser, "sign-in")
    sign_in(secret)
    WebDriverWait(browser, 30).until(ready.url_contains("/console/jobs"))
    assert browser.find_element(By.CSS_SELECTOR, ".who span").text == "alice"
    assert load_time(browser) < 1000
    cookie = browser.get_cookie("tailor_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"

    browser.find_element(By.CSS_SELECTOR, ".who button").click()  # sign out
    WebDriverWait(browser, 30).until(ready.url_contains("/console/sign-in"))
    browser.get(console.endpoint + "/console/models")
    assert "/console/sign-in" in browser.current_url


def test_the_api_docs_render_with_no_internet(signed_in, console, shot):
    # The browser resolves no host but 127.0.0.1: a script from a CDN would not load.
    signed_in.get(console.endpoint + "/docs")
    WebDriverWait(signed_in, 30).until(ready.presence_of_element_located((By.CSS_SELECTOR, ".information-container")))
    operations = signed_in.find_elements(By.CSS_SELECTOR, ".opblock")
    assert len(operations) > 20
    shot(signed_in, "api-docs")


def test_the_console_works_from_the_keyboard(signed_in, console):
    driver = signed_in
    driver.get(console.endpoint + "/console/jobs")
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)  # the first stop is the skip link, which takes focus past the navigation
    skip = driver.switch_to.active_element
    assert skip.get_attribute("class") == "skip" and skip.is_displayed()
    skip.send_keys(Keys.ENTER)
    assert driver.switch_to.active_element.get_attribute("id") == "main"
    # Every page is reachable by Tab from the navigation, and Enter on a link opens it.
    driver.get(console.endpoint + "/console/jobs")
    links = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "header nav a")]
    assert links[:6] == ["Datasets", "Jobs", "Models", "Playground", "Evaluations", "Graders"]
    focused = []
    for _ in range(5):
        driver.switch_to.active_element.send_keys(Keys.TAB)
        focused.append(driver.switch_to.active_element.text)
    assert focused == ["Skip to content", "Tailor", "Datasets", "Jobs", "Models"]
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    assert driver.current_url.endswith("/console/models")
