"""The worker's status page in headless Chromium (as the engine's page is tested: Debian's
`chromium` and `chromium-driver`, Selenium), on a real PostgreSQL with the simulator: both cells
shown holding their keys with the cluster below, the kill switch form refused without the right
token, then engaging one cell only, the page refreshing itself to show it. Screenshots go to
`test-artifacts/worker-page/` (git-ignored)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from e2e_harness import FAST_FEED, wait_for
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from test_e2e_status_page_browser import Page, _browser
from test_worker_inprocess import sim2, two  # noqa: F401 - fixtures
from test_worker_status import TOKENS, configure

from rules_engine.service.worker import Worker
from rules_engine.service.worker_config import load_worker_config

pytestmark = pytest.mark.cluster

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "worker-page"


def states(driver: object) -> dict[str, str]:
    rows = driver.find_elements(By.CSS_SELECTOR, "#cells tbody tr")  # type: ignore[attr-defined]
    return {row.get_attribute("data-key"): row.get_attribute("data-state") for row in rows}


def kill_cell(driver: object, key: str) -> str:
    row = driver.find_element(By.CSS_SELECTOR, f'#cells tr[data-key="{key}"] td.kill')  # type: ignore[attr-defined]
    return str(row.text)


async def test_the_worker_status_page_in_headless_chromium(tmp_path, pg_server, pg_dsn, sim2, two) -> None:  # noqa: F811
    path, env = configure(tmp_path, pg_dsn, pg_server.password, sim2, two)
    worker = Worker(load_worker_config(path), cli_live=True, port=0, environ=env,
                    cell_options={"feed_options": FAST_FEED, "reload_interval": None, "kill_poll_interval": 0.2,
                                  "snapshot_interval": 0.2, "drain_timeout": 5.0})
    url = f"http://127.0.0.1:{await worker.start()}"
    driver = await asyncio.to_thread(_browser)
    page = Page(driver)
    try:
        await wait_for(lambda: worker.holding() == ["k1", "k2"], timeout=30)
        await page(lambda d: d.get(url + "/"))
        await page.until(lambda d: states(d) == {"k1": "holding", "k2": "holding"})
        body = await page(lambda d: d.find_element(By.TAG_NAME, "body").text)
        assert "Cells" in body and "Shared feeds" in body and "Cluster" in body
        source = await page(lambda d: d.page_source)
        assert all(t not in source for t in TOKENS.values())
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page(lambda d: d.save_screenshot(str(ARTIFACTS / "01-cells.png")))

        await page(lambda d: d.find_element(By.ID, "kill-token").send_keys(TOKENS["k2"]))
        await page(lambda d: Select(d.find_element(By.ID, "kill-key")).select_by_value("k1"))
        await page(lambda d: d.find_element(By.ID, "kill-engage").click())
        refused = await page.until(lambda d: d.find_element(By.ID, "kill-result").text)
        assert refused.startswith("refused (401)")  # k2's token does not reach k1
        assert not worker.cells["k1"].service.kill_switch.engaged
        await page(lambda d: d.find_element(By.ID, "kill-token").clear())
        await page(lambda d: d.find_element(By.ID, "kill-token").send_keys(TOKENS["k1"]))
        await page(lambda d: d.find_element(By.ID, "kill-reason").send_keys("browser drill"))
        await page(lambda d: d.find_element(By.ID, "kill-engage").click())
        await page.until(lambda d: d.find_element(By.ID, "kill-result").text == "kill switch engaged: cell k1")
        assert worker.cells["k1"].service.kill_switch.state.reason == "browser drill"
        assert not worker.cells["k2"].service.kill_switch.engaged
        await page.until(lambda d: "engaged" in kill_cell(d, "k1") and "browser drill" in kill_cell(d, "k1"))
        assert "clear" in await page(lambda d: kill_cell(d, "k2"))
        await page(lambda d: d.save_screenshot(str(ARTIFACTS / "02-cell-killed.png")))
    finally:
        await asyncio.to_thread(driver.quit)
        await worker.stop()
