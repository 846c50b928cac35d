"""The UI in a real browser (Debian's headless chromium): every page loads, a candidate is approved by
clicking, stored markup shows as text. Screenshots go to ``test-artifacts/ui/``."""

from __future__ import annotations

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from behavior_memory.types import BehaviorStatus


def shot(browser, artifacts, name: str) -> None:
    path = artifacts / f"{name}.png"
    assert browser.save_screenshot(str(path)), name
    assert path.stat().st_size > 1000


def click_and_wait(browser, element) -> None:
    """Click, then wait until the next page replaced this one (a click does not wait for it)."""
    page = browser.find_element(By.TAG_NAME, "html")
    element.click()
    wait = WebDriverWait(browser, 10)
    wait.until(expected_conditions.staleness_of(page))
    # A POST answered by a redirect passes through two documents: wait for the last one to be whole.
    wait.until(settled)


def settled(driver) -> bool:
    """The page is loaded and it is not a write's address (the redirect after it has landed)."""
    url = driver.current_url.split("?")[0]
    loaded = driver.execute_script("return document.readyState") == "complete"
    return bool(loaded) and not url.endswith(("/decide", "/feedback"))


def no_alert(browser) -> None:
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert  # noqa: B018 - reading it is the check


def test_every_page_loads_in_the_browser(browser, live, artifacts):
    ids = live.seeded.ids
    pages = {
        "handbook": ("/", "Handbook"),
        "handbook-search": ("/?q=How+many+integers+are+divisible+by+3+or+5", "Handbook"),
        "behavior": (f"/behaviors/{ids['behavior_inclusion_exclusion']}", "behavior_inclusion_exclusion"),
        "review": ("/review", "Review queue"),
        "traces": ("/traces", "Traces"),
        "trace": (f"/traces/{ids['trace1']}", "Trace"),
        "plots": ("/plots", "Plots"),
        "not-found": ("/behaviors/behavior_nope", "404"),
    }
    for name, (path, heading) in pages.items():
        browser.get(live.url + path)
        assert heading in browser.find_element(By.TAG_NAME, "h1").text, name
        assert "Traceback" not in browser.page_source
        shot(browser, artifacts, name)
    # The stylesheet came from the package (nothing else is fetched): the header is styled.
    browser.get(live.url + "/")
    header = browser.find_element(By.TAG_NAME, "header")
    assert header.value_of_css_property("display") == "flex"
    block = browser.find_element(By.CSS_SELECTOR, "table#behaviors").text
    assert "behavior_check_units" in block
    browser.get(live.url + "/plots")
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart")) >= 2


def test_search_shows_the_block_the_agent_gets(browser, live):
    browser.get(live.url + "/")
    box = browser.find_element(By.NAME, "q")
    box.send_keys("How many integers below 100 are divisible by 3 or 5?")
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "#ask-form button"))
    block = browser.find_element(By.ID, "rendered-block").text
    assert "Here is a list of behaviors" in block and "behavior_inclusion_exclusion:" in block


def test_approving_a_candidate_in_the_browser_changes_the_store(browser, live, artifacts):
    memory = live.seeded.memory
    key = live.seeded.ids["behavior_draw_a_figure"]
    assert memory.handbook.get(key).status == BehaviorStatus.CANDIDATE
    browser.get(live.url + "/review")
    click_and_wait(browser, browser.find_element(By.ID, f"approve-{key}"))
    assert browser.current_url.endswith("/review?ns=default")
    assert not browser.find_elements(By.ID, f"row-{key}")  # it left the queue
    shot(browser, artifacts, "review-after-approve")
    stored = memory.handbook.get(key)
    assert stored.status == BehaviorStatus.ACTIVE
    assert stored.metadata["history"][-1]["by"].endswith("via ui")
    browser.get(f"{live.url}/behaviors/{key}")
    assert browser.find_element(By.ID, "behavior-status").text == "active"
    assert "via ui" in browser.find_element(By.ID, "history").text


def test_markup_in_a_behavior_is_shown_as_text(browser, live, artifacts):
    from ui_seed import MARKUP

    key = live.seeded.ids["behavior_markup_text"]
    browser.get(f"{live.url}/behaviors/{key}")
    no_alert(browser)
    instruction = browser.find_element(By.ID, "behavior-instruction")
    assert MARKUP in instruction.text
    assert not instruction.find_elements(By.TAG_NAME, "b")
    assert not instruction.find_elements(By.TAG_NAME, "script")
    shot(browser, artifacts, "behavior-markup")
    browser.get(live.url + "/review")
    no_alert(browser)
    assert MARKUP in browser.find_element(By.ID, f"row-{key}").text


def test_feedback_in_the_browser(browser, live):
    trace_id = live.seeded.ids["trace3"]
    browser.get(f"{live.url}/traces/{trace_id}")
    form = browser.find_element(By.ID, "feedback-form")
    form.find_element(By.CSS_SELECTOR, "option[value='']")  # "unchanged" is there
    Select(form.find_element(By.NAME, "outcome")).select_by_visible_text("failure")
    form.find_element(By.NAME, "comment").send_keys("wrong <em>twice</em>")
    click_and_wait(browser, form.find_element(By.TAG_NAME, "button"))
    assert "wrong <em>twice</em>" in browser.find_element(By.ID, "trace-feedback").text
    trace = live.seeded.memory.traces.get(trace_id)
    assert trace.outcome == "failure" and trace.feedback == "wrong <em>twice</em>"
