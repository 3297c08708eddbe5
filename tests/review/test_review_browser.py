"""End to end in a real headless browser: Playwright drives Debian's Chromium against a real uvicorn server.

A reviewer logs in with the form, reviews three items with the keyboard only (accept, change the
answer, edit the question) and rejects a fourth; an XSS payload stays inert; a second reviewer
disagrees on the first item and an admin resolves it in the browser; then the export's parquet holds
exactly the three kept items with the changes and their provenance.

Chromium comes from Debian's ``chromium`` package (``.ci/run`` installs it); Playwright's own browser
download cannot run here. Outside CI the test skips when that browser is absent; in CI it fails.
Set ``DSR_REVIEW_SCREENSHOTS=<folder>`` to keep the page screenshots (``docs/review.md`` uses them).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from dsr.review.export import export_reviewed

from .conftest import XSS_QUESTION, LiveServer, ReviewDb, chromium_path

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def _browser_or_skip() -> str:
    path = chromium_path()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        path = None
    if path is None:
        reason = "no system Chromium or no playwright package (apt-get install chromium; pip install playwright)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)
    return path


def _screenshot(page: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    keep = os.environ.get("DSR_REVIEW_SCREENSHOTS")
    if keep:
        from PIL import Image

        Path(keep).mkdir(parents=True, exist_ok=True)
        # a 128-colour palette keeps the committed PNGs small
        Image.open(path).convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(
            Path(keep) / name, optimize=True)


def _until(page: Any, expression: str, timeout: float = 30000) -> None:
    """Poll a JavaScript expression until it is true. Playwright's ``wait_for_function`` evaluates its
    predicate with ``eval`` inside the page, which the app's Content-Security-Policy rightly refuses;
    ``page.evaluate`` goes through the DevTools protocol instead."""
    from playwright.sync_api import Error

    deadline = time.monotonic() + timeout / 1000
    while True:
        try:
            if page.evaluate(expression):
                return
        except Error as exc:  # a navigation replaced the page under us: ask the new one
            if "context was destroyed" not in str(exc):
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        time.sleep(0.05)


def _wait_item(page: Any, pk: int) -> None:
    page.wait_for_url(re.compile(rf"/items/{pk}(\?|$)"))
    _until(page, "document.body.dataset.keys === 'ready'")


@pytest.mark.slow
def test_review_three_items_with_the_keyboard_then_export(xss_db: ReviewDb, live_server: LiveServer,
                                                          tmp_path: Path) -> None:
    chromium = _browser_or_skip()
    from playwright.sync_api import sync_playwright

    db = xss_db
    dialogs: list[str] = []
    page_errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("pageerror", lambda e: page_errors.append(str(e)))

            # log in through the form
            page.goto(f"{live_server.url}/queue")
            page.wait_for_url(re.compile(r"/login\?next="))
            page.fill("#token", db.tokens["alice"])
            page.keyboard.press("Enter")
            page.wait_for_url(re.compile(r"/queue$"))
            _until(page, "document.body.dataset.keys === 'ready'")
            assert page.locator("#queue-table tbody tr").count() == 17
            _screenshot(page, tmp_path, "review-queue.png")

            # item 1: the media are there; accept with "a"
            page.keyboard.press("Enter")
            _wait_item(page, 1)
            _until(page, "['ready', 'fallback'].includes(document.body.dataset.video)", timeout=20000)
            assert page.evaluate("document.body.dataset.video") == "ready"  # Chromium plays the H.264 clip
            start = float(page.get_attribute("#clip", "data-start") or "nan")
            _until(page, f"Math.abs(document.getElementById('clip').currentTime - {start}) < 0.3")
            _until(page, "[...document.querySelectorAll('#strip img')].every(i => i.complete && i.naturalWidth > 0)")
            _until(page, "document.getElementById('quantity-plot').naturalWidth > 0")
            assert page.locator("svg.boxes rect.box").count() >= 1
            assert "generator's answer" in page.inner_text("#rule-check")
            _screenshot(page, tmp_path, "review-item.png")
            gen1 = page.get_attribute("#item", "data-generator")
            page.keyboard.press("a")

            # item 2: the right answer is another letter: its number key
            _wait_item(page, 2)
            gen2 = page.get_attribute("#item", "data-generator") or "A"
            letters = page.get_attribute("#item", "data-letters") or "ABCD"
            new2 = next(x for x in letters if x != gen2)
            page.keyboard.press(str(letters.index(new2) + 1))

            # item 3: edit the question ("e", type, Ctrl+Enter)
            _wait_item(page, 3)
            question3 = page.inner_text("#question")
            page.keyboard.press("e")
            assert page.evaluate("document.activeElement.id") == "edit-question"
            page.keyboard.press("Control+a")
            edited = "Reviewed: " + question3
            page.keyboard.type(edited)
            page.keyboard.press("Control+Enter")

            # item 4: reject ("r", reason 2, Enter)
            _wait_item(page, 4)
            page.keyboard.press("r")
            page.keyboard.press("2")
            assert page.evaluate("document.getElementById('reject-reason').value") == "not_visible"
            page.keyboard.press("Enter")
            _wait_item(page, 5)

            # the XSS item renders its payload as text and runs none of it
            page.goto(f"{live_server.url}/items/17")
            _until(page, "document.body.dataset.keys === 'ready'")
            assert page.inner_text("#question") == XSS_QUESTION
            assert page.evaluate("window.__xss === undefined")
            assert page.locator("#options svg").count() == 0 and page.locator("#question img").count() == 0
            page.wait_for_timeout(300)

            # bob disagrees with alice on item 1 (through the API); the admin resolves it in the browser
            other1 = next(x for x in "ABCD" if x != gen1)
            r = httpx.put(f"{live_server.url}/api/items/1/decision", headers=db.auth("bob"),
                          json={"action": "change_answer", "answer": other1, "version": 0})
            assert r.status_code == 200
            admin = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            admin.on("pageerror", lambda e: page_errors.append(str(e)))
            admin.goto(f"{live_server.url}/login?next=/items/1")
            admin.fill("#token", db.tokens["carol"])
            admin.keyboard.press("Enter")
            _wait_item(admin, 1)
            assert "disagreement" in admin.inner_text("#admin-panel")
            _screenshot(admin, tmp_path, "review-admin.png")
            admin.click("button.adopt >> text=Resolve as bob")
            admin.wait_for_selector("#resolution")
            assert "Resolved by carol" in admin.inner_text("#resolution")
        finally:
            browser.close()
    assert not dialogs and not page_errors, (dialogs, page_errors)

    out = tmp_path / "refined.parquet"
    report = export_reviewed(db.engine, out)  # type: ignore[arg-type]
    assert report.written == 3 and report.statuses["rejected"] == 1
    rows = pq.read_table(out).to_pylist()
    assert [r["review_status"] for r in rows] == ["edited", "edited", "edited"]
    assert [r["reviewers"] for r in rows] == [["alice", "bob"], ["alice"], ["alice"]]
    assert rows[0]["answer"] == other1 and rows[0]["decisions"] == ["accept", f"change_answer:{other1}"]
    assert rows[0]["resolved_by"] == "carol" and json.loads(rows[0]["original"])["answer"] == gen1
    assert rows[1]["answer"] == new2 and rows[1]["decisions"] == [f"change_answer:{new2}"]
    assert json.loads(rows[1]["original"])["answer"] == gen2
    assert rows[2]["question"] == edited and rows[2]["decisions"][0].startswith("edit:")
    assert json.loads(rows[2]["original"])["question"] == question3
