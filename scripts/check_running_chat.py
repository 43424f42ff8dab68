"""Drive a running chat (e.g. README command 1) in Debian chromium: ask, wait for the verified answer, screenshot.

    python scripts/check_running_chat.py http://127.0.0.1:7860 chat.png ["question"]
"""
import sys
import time

from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def main(url: str, out: str, question: str = "How is type 2 diabetes diagnosed?") -> int:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        pg = browser.new_page(viewport={"width": 1366, "height": 820})
        pg.set_default_timeout(600_000)  # a cold local model on 2 cores
        outside: list[str] = []
        pg.on("request", lambda r: outside.append(r.url) if not r.url.startswith((url, "data:", "blob:")) else None)
        pg.goto(url)
        t0 = time.time()
        pg.locator("#cc-question textarea").fill(question)
        pg.locator("#cc-ask").click()
        pg.locator("#cc-chat .cc-foot:has-text('answer id')").first.wait_for()  # shown once verified
        answer = pg.locator("#cc-chat .cc-answer").last
        print(f"answer after {time.time() - t0:.1f} s:\n{answer.inner_text()[:1500]}")
        cites = answer.locator("a.cc-cite")
        n_cites = cites.count()
        print("citation markers:", n_cites)
        if n_cites:
            print("first citation:", (cites.first.get_attribute("title") or "")[:300])
            cites.first.click()
        pg.screenshot(path=out, full_page=True)
        print("requests outside loopback:", outside)
        browser.close()
    return 0 if n_cites and not outside else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
