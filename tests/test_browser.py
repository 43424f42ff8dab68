"""The chat in a real Chromium (Debian's /usr/bin/chromium through Python Playwright) over the small index:
ask, see the cited answer, open a citation, switch a filter, save a screenshot; nothing leaves loopback."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from live_servers import running_app

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 120_000  # a shared CI core can be slow; waits end as soon as the text is there

pytestmark = pytest.mark.browser


def chromium_path() -> str:
    path = os.environ.get("CARECITE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("the browser test needs Debian's chromium (apt-get install chromium) or CARECITE_CHROMIUM")
    return path


@pytest.fixture
def page(small_index):  # closed after its test: the embedded index serves one app at a time
    from playwright.sync_api import sync_playwright
    with running_app(small_index) as (url, _), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        ctx = browser.new_context(viewport={"width": 1366, "height": 820},
                                  permissions=["clipboard-read", "clipboard-write"])
        pg = ctx.new_page()
        pg.set_default_timeout(TIMEOUT_MS)
        outside: list[str] = []
        pg.on("request", lambda r: outside.append(r.url)
              if not r.url.startswith((url, "data:", "blob:")) else None)
        pg.goto(url)
        yield pg, outside
        browser.close()


def ask(pg, question: str) -> None:
    before = pg.locator("#cc-chat .cc-foot:has-text('answer id')").count()
    pg.locator("#cc-question textarea").fill(question)
    pg.locator("#cc-ask").click()
    # the verified answer's footer appears when streaming ends
    pg.locator("#cc-chat .cc-foot:has-text('answer id')").nth(before).wait_for()


def test_ask_open_citation_filter_and_screenshot(page):
    pg, outside = page
    ask(pg, "What are the symptoms of breast cancer?")
    answer = pg.locator("#cc-chat .cc-answer").last
    assert "breast" in answer.inner_text().lower()
    cite = answer.locator("a.cc-cite").first
    cite.wait_for()
    tooltip = cite.get_attribute("title")
    assert tooltip and "Breast Cancer" in tooltip  # hover shows title, section and passage

    key = cite.get_attribute("href").lstrip("#")
    details = answer.locator(f"details.{key}")
    assert details.get_attribute("open") is None
    passage = details.locator("blockquote")
    assert not passage.is_visible()
    cite.click()
    passage.wait_for(state="visible")  # clicking [n] opens the exact passage in the answer ...
    assert passage.inner_text().split()[:4] == tooltip.split("\n", 1)[1].split()[:4]
    assert pg.locator(f"#cc-sources-panel details.{key}[open] blockquote").is_visible()  # ... and in the panel

    pg.locator("#cc-copy-btn").click()  # "copy answer with references"
    copied = pg.evaluate("navigator.clipboard.readText()")
    assert "breast" in copied.lower() and "\nReferences:\n[" in copied and "<" not in copied

    pg.locator("#cc-scope").get_by_text("Cases", exact=True).click()
    ask(pg, "What is the plan for knee pain?")
    panel = pg.locator("#cc-sources-panel")
    assert panel.locator("details").count() >= 1
    sources = panel.locator("details .cc-foot").all_text_contents()  # closed: not rendered as text
    assert sources and all("ACI-Bench · case" in s for s in sources), sources

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.locator("#cc-chat a.cc-cite").last.click()
    pg.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)
    assert (ARTIFACTS / "chat.png").stat().st_size > 10_000
    pg.get_by_role("tab", name="Cases").click()  # the case list is filled when the page loads
    assert pg.locator(".cc-foot").filter(has_text=re.compile(r"^\d+ cases$")).first.inner_text().endswith("cases")
    assert outside == [], f"the page fetched from outside loopback: {outside[:5]}"


def test_quick_answer_shows_before_the_model_answer(small_index):
    """With a real local model (SmolLM2, the test preset's), the verified quotes appear while the model writes,
    marked as quotes, and the final verified answer replaces them."""
    from playwright.sync_api import sync_playwright
    s = small_index.model_copy(deep=True)
    s.generator.kind, s.generator.local_model, s.generator.max_tokens, s.generator.n_ctx = "local", "smollm2", 96, 2048
    with running_app(s) as (url, _), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        pg = browser.new_page()
        pg.set_default_timeout(TIMEOUT_MS)
        pg.goto(url)
        pg.locator("#cc-question textarea").fill("What are the symptoms of breast cancer?")
        pg.locator("#cc-ask").click()
        writing = pg.locator("#cc-chat #cc-writing")
        writing.wait_for()  # the quick answer is on screen while the full answer is written
        quick = pg.locator("#cc-chat .cc-answer").last
        assert quick.locator("#cc-quotes").count() == 1 and quick.locator("a.cc-cite").count() >= 1
        assert "breast" in quick.inner_text().lower()
        writing.wait_for(state="detached")  # the verified final answer replaced the quick one
        final = pg.locator("#cc-chat .cc-answer").last
        assert "generator: local:smollm2" in final.inner_text()
        # The model's verified answer, or the quotes it fell back to (kind "quotes"): cited either way.
        assert final.locator("a.cc-cite").count() >= 1
        browser.close()
