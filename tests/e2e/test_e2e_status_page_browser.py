"""The status page in a real browser: the service runs against the simulator, headless
Chromium (Debian's `chromium` and `chromium-driver`, installed by `make`) is driven through
Selenium. It checks the rules table and its filter, opens a decision trace after a fire,
engages the kill switch with the admin token and is refused without it. Screenshots of each
step are kept in `test-artifacts/status-page/` (git-ignored)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_harness import ADMIN_TOKEN, E2E, move, post, signed, wait_for
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "status-page"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

RULES = """
    - id: btc-breakout
      description: buy a little when BTC breaks 70k on a tight spread
      triggers: [{type: price, symbol: BTC/USD, crosses_above: 70000}]
      when: "ask - bid < 50"
      cooldown: 10m
      actions:
        - {type: check_balance, asset: USD, minimum: 1000}
        - {type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: "=round(bid - 500, 1)"}
        - {type: notify, channel: ops, message: "bought at {price}"}
    - id: eth-dip
      triggers: [{type: price, symbol: ETH/USD, crosses_below: 2400}]
      for: 30s
      actions: [{type: log, message: "eth dipped to {price}"}]
    - id: hourly-report
      triggers: [{type: timer, every: 1h}]
      actions: [{type: log, message: "still here"}]
    - id: tv-alerts
      triggers: [{type: signal, source: mybot}]
      max_fires: {count: 5, window: 1d}
      actions: [{type: log, message: "signal {signal.action}"}]
    - id: paused
      enabled: false
      triggers: [{type: price, symbol: XBTUSD, crosses_below: 50000}]
      actions: [{type: log, message: "never"}]
"""


def _browser() -> WebDriver:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.fail("chromium and chromium-driver are needed for the status page test: `make install` "
                    "installs them (as root: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1440,1500", "--disable-extensions", "--no-first-run"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


class Page:
    """Blocking Selenium calls, run off the event loop (the service answers on it)."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver

    async def __call__(self, fn: Callable[[WebDriver], Any]) -> Any:
        return await asyncio.to_thread(fn, self.driver)

    async def until(self, condition: Callable[[WebDriver], Any], timeout: float = 10.0) -> Any:
        """Wait for `condition`; an element the page's refresh replaced while it was read is
        looked for again (the status pages re-render their tables as they poll)."""
        wait = WebDriverWait(self.driver, timeout, 0.1, ignored_exceptions=(StaleElementReferenceException,))
        return await asyncio.to_thread(wait.until, condition)

    async def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.driver.save_screenshot, str(ARTIFACTS / name))


def _rows(driver: WebDriver) -> dict[str, str]:
    return {row.get_attribute("data-rule") or "": row.get_attribute("data-state") or ""
            for row in driver.find_elements(By.CSS_SELECTOR, "#rules tbody tr")}


def _visible_rules(driver: WebDriver) -> list[str]:
    return [row.get_attribute("data-rule") or "" for row in driver.find_elements(By.CSS_SELECTOR, "#rules tbody tr")
            if row.is_displayed()]


async def test_status_page_in_headless_chromium(e2e: E2E) -> None:
    e2e.write_rules(RULES)
    driver = await asyncio.to_thread(_browser)
    page = Page(driver)
    try:
        async with e2e.running() as (service, seen, url):
            await page(lambda d: d.get(url + "/"))
            rows = await page(_rows)
            assert rows == {"btc-breakout": "armed", "eth-dip": "armed", "hourly-report": "armed",
                            "tv-alerts": "armed", "paused": "disabled"}
            body = await page(lambda d: d.find_element(By.TAG_NAME, "body").text)
            assert "XBTUSD" in body and "ETHUSD" in body and "no open orders" in body
            assert ADMIN_TOKEN not in await page(lambda d: d.page_source)
            # the header's health badge is refreshed with the rest of the page, not only drawn at load
            await page(lambda d: d.execute_script("document.getElementById('health').textContent = 'stale'"))
            await page.until(lambda d: d.find_element(By.ID, "health").text == "ok")
            await page(lambda d: Select(d.find_element(By.ID, "state-filter")).select_by_value("disabled"))
            assert await page(_visible_rules) == ["paused"]
            await page(lambda d: Select(d.find_element(By.ID, "state-filter")).select_by_value("all"))

            await move(e2e, service, "XBTUSD", "69900", "70100")
            await move(e2e, service, "ETHUSD", "2390")
            raw, headers = signed({"id": "s-1", "action": "buy"})
            await post(url + "/signals/mybot", raw, headers)
            raw, headers = signed({"id": "s-2"}, secret="not-the-secret-0123456789")
            await post(url + "/signals/mybot", raw, headers)
            await wait_for(lambda: seen.intents("place_order"))
            await service.settle()
            # the page refreshes itself: the fire appears without a reload
            link = await page.until(lambda d: d.find_elements(By.CSS_SELECTOR, 'a[href="/trace/btc-breakout%231"]'))
            await page.until(lambda d: _rows(d).get("btc-breakout") == "cooling_down"
                             and _rows(d).get("eth-dip") == "holding")
            signals = await page(lambda d: d.find_element(By.ID, "signals").text)
            assert "accepted" in signals and "rejected" in signals
            await page.shot("01-rules-after-a-fire.png")

            await page(lambda d: link[0].click())
            trace = await page.until(lambda d: d.find_element(By.ID, "trace"))
            text = await page(lambda d: trace.text)
            for expected in ("Rule btc-breakout", "trigger", "value 70100", "ask - bid < 50 → True", "decision",
                             "request", "AddOrder", "response", "audit seq"):
                assert expected in text, expected
            await page.shot("02-decision-trace.png")

            await page(lambda d: d.get(url + "/"))
            await page(lambda d: d.find_element(By.ID, "kill-token").send_keys("wrong-token-0000000000"))
            await page(lambda d: d.find_element(By.ID, "kill-engage").click())
            refused = await page.until(lambda d: d.find_element(By.ID, "kill-result").text)
            assert refused.startswith("refused (401)")
            assert service.kill_switch is not None and not service.kill_switch.engaged
            await page.shot("03-kill-switch-refused.png")
            await page(lambda d: d.find_element(By.ID, "kill-token").clear())
            await page(lambda d: d.find_element(By.ID, "kill-token").send_keys(ADMIN_TOKEN))
            await page(lambda d: d.find_element(By.ID, "kill-reason").send_keys("browser drill"))
            await page(lambda d: d.find_element(By.ID, "kill-engage").click())
            await page.until(lambda d: d.find_element(By.ID, "kill-result").text == "kill switch engaged")
            assert service.kill_switch.engaged and service.kill_switch.state.reason == "browser drill"
            await page.until(lambda d: "engaged" in d.find_element(By.ID, "kill-state").text)
            assert ADMIN_TOKEN not in await page(lambda d: d.page_source.replace(
                d.find_element(By.ID, "kill-token").get_attribute("value") or "", ""))
            await page.shot("04-kill-switch-engaged.png")
    finally:
        await asyncio.to_thread(driver.quit)
    assert [r["data"]["source"] for r in e2e.audit_records("kill_switch")] == ["http 127.0.0.1 (status page)"]
