"""End to end in the real Neo4j Browser of the stack, driven in headless Chromium (the OS
package, with its chromedriver) by selenium: connect with the stack's credentials, run a
library query with its `:param` block and find its rows; play the served guide, load the
style and run a step of the guide from its runnable blocks.  Screenshots (always, pass or
fail) go to reports/test-artifacts/."""

from __future__ import annotations

import re
import subprocess
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import cypher
from fraudgraph import browser, connect
from fraudgraph.settings import Settings, require_secret
from graph.driver import Driver
from graph.projection import GraphWriter
from ingest.transaction import Transaction
from tests.integration.cli_helpers import FRAUDGRAPH

try:
    from selenium import webdriver
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        ElementNotInteractableException,
        TimeoutException,
    )
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # pragma: no cover - reported by the `chrome` fixture
    webdriver = None  # type: ignore[assignment]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "reports" / "test-artifacts"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")
SIZE = {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False}
CARDS = 5
TIMEOUT = 45.0
FRAME = "[data-testid=frame]"


@pytest.fixture
def chrome(tmp_path: Path) -> Iterator[WebDriver]:
    """A fresh headless Chromium with its own profile (no stored Browser credentials)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if webdriver is None:
        missing.append("selenium (pip install -e '.[dev]')")
    if missing:
        message = (f"missing {', '.join(missing)}: `. scripts/bootstrap.sh` installs them "
                   "(apt-get install chromium chromium-driver, as root)")
        pytest.fail(message)  # integration tests never skip: bootstrap installs them
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", SIZE)
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def neo4j(stack: Settings) -> Iterator[Driver]:
    driver = connect.neo4j(stack)
    yield driver
    driver.close()


@pytest.fixture
def shared_device(neo4j: Driver, unique: str) -> Iterator[tuple[str, list[str]]]:
    """A device used by CARDS cards of CARDS users, with this test's own ids."""
    prefix = f"browser-{unique}-"
    device = prefix + "device"
    txs = [Transaction(transaction_id=f"{prefix}tx{i}", event_ms=1_767_225_600_000 + i,
                       amount_minor=1000 + i, currency="USD", card_id=f"{prefix}card{i}",
                       user_id=f"{prefix}user{i}", site_id=prefix + "site", country="US",
                       device_id=device, merchant_category="electronics")
           for i in range(CARDS)]
    writer = GraphWriter(neo4j)
    writer.apply_schema()
    writer.project(txs)
    yield device, sorted(tx.card_id for tx in txs)
    neo4j.execute_query("MATCH (n) WHERE n.id STARTS WITH $prefix DETACH DELETE n",
                        prefix=prefix)


@pytest.fixture
def screenshot(chrome: WebDriver, request: pytest.FixtureRequest) -> Iterator[None]:
    """Save the page as reports/test-artifacts/<test name>.png when the test ends."""
    yield
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    chrome.save_screenshot(str(ARTIFACTS / f"{request.node.name}.png"))


def wait(chrome: WebDriver, what: str, condition: Callable[[WebDriver], Any]) -> Any:
    """``condition``'s first truthy value within TIMEOUT; else fail naming ``what`` and
    showing the newest frames."""
    try:
        return WebDriverWait(chrome, TIMEOUT, poll_frequency=0.2).until(condition)
    except TimeoutException:
        frames = [content(f)[:300] for f in chrome.find_elements(By.CSS_SELECTOR, FRAME)[:3]]
        raise AssertionError(f"Browser never showed {what}; newest frames: {frames}") from None


def content(element: WebElement) -> str:
    """The element's text as the DOM holds it (``.text`` leaves out what is scrolled away
    or covered, which depends on timing)."""
    return element.get_attribute("textContent") or ""


def newest_frame(chrome: WebDriver) -> WebElement | None:
    frames = chrome.find_elements(By.CSS_SELECTOR, FRAME)
    return frames[0] if frames else None


def connect_browser(chrome: WebDriver, settings: Settings) -> None:
    """Open the stack's Browser through browser_url (which prefills scheme, address and
    user) and log in with the stack's password."""
    n = settings.neo4j
    chrome.get(browser.browser_url(n.http_url, n.uri, n.user))
    scheme, _, address = n.uri.partition("://")

    def form_prefilled(c: WebDriver) -> bool:
        fields = {name: c.find_elements(By.CSS_SELECTOR, f"[data-testid={name}]")
                  for name in ("bolt-scheme-select", "boltaddress", "username", "password")}
        if not all(fields.values()):
            return False
        return (Select(fields["bolt-scheme-select"][0]).first_selected_option.text,
                fields["boltaddress"][0].get_attribute("value"),
                fields["username"][0].get_attribute("value")) == (
            f"{scheme}://", address, n.user)

    wait(chrome, "the connect form prefilled from the URL", form_prefilled)
    password = require_secret(n.password, "FRAUDGRAPH_NEO4J_PASSWORD")
    field = chrome.find_element(By.CSS_SELECTOR, "[data-testid=password]")
    field.send_keys(password)
    typed = field.get_attribute("value") == password  # a bool: never print the secret
    assert typed, "the password field did not take the password"
    chrome.find_element(By.CSS_SELECTOR, "[data-testid=connect]").click()
    stream = chrome.find_element(By.CSS_SELECTOR, "[data-testid=stream]")
    wait(chrome, "a connection", lambda _c: "connected as user" in content(stream).lower())


PASTE = """
const data = new DataTransfer();
data.setData('text/plain', arguments[1]);
arguments[0].dispatchEvent(new ClipboardEvent('paste', {clipboardData: data, bubbles: true}));
"""


def paste(chrome: WebDriver, text: str) -> None:
    """Put ``text`` into the editor as a paste (typed, Monaco would auto-close brackets)."""
    chrome.find_element(By.CSS_SELECTOR, "[data-testid=activeEditor]").click()
    textarea = chrome.find_element(By.CSS_SELECTOR, "[data-testid=activeEditor] textarea")
    chrome.execute_script(PASTE, textarea, text)


def run_in_editor(chrome: WebDriver, text: str) -> WebElement:
    """Run ``text`` from the editor; the frame it opens."""
    before = newest_frame(chrome)
    paste(chrome, text)
    wait(chrome, "the text in the editor", lambda c: editor_holds(c, text))
    return run_editor(chrome, before)


def run_editor(chrome: WebDriver, before: WebElement | None) -> WebElement:
    """Run what the editor holds; the frame it opens."""
    chrome.find_element(By.CSS_SELECTOR, "[data-testid=editor-Run]").click()
    frame: WebElement = wait(chrome, "a new frame", lambda c: newest_frame(c) not in (
        None, before) and newest_frame(c))
    return frame


def params_set(frame: WebElement, count: int) -> Callable[[WebDriver], bool]:
    """A multi-statement `:param` frame whose ``count`` statements all succeeded."""
    def done(_c: WebDriver) -> bool:
        icons = frame.find_elements(By.CSS_SELECTOR, "[data-testid=multi-statement-list-icon]")
        return len(icons) == count and all(
            i.get_attribute("title") == "Status: success" for i in icons)
    return done


def streamed(frame: WebElement, rows: int | None = None) -> Callable[[WebDriver], bool]:
    """The frame's status bar: "Started streaming N records after ..."."""
    text = f"Started streaming {rows} record" if rows is not None else "Started streaming"
    return lambda _c: text in content(frame)


def click_block(chrome: WebDriver, container: WebElement, text: str) -> WebElement:
    """Click the runnable block holding ``text`` (a click puts it into the editor), run it,
    and return the frame it opens."""
    blocks = container.find_elements(By.CSS_SELECTOR, "pre.runnable")
    texts = [content(b).strip() for b in blocks]
    assert text in texts, f"no runnable block {text[:60]!r} in {[t[:40] for t in texts]}"
    block = blocks[texts.index(text)]
    before = newest_frame(chrome)
    wait(chrome, "the block in the editor",
         lambda c: clicked(block) and editor_holds(c, text))
    return run_editor(chrome, before)


def clicked(element: WebElement) -> bool:
    """Click, or False while the element cannot take it yet (a slide still sliding in)."""
    try:
        element.click()
    except (ElementClickInterceptedException, ElementNotInteractableException):
        return False
    return True


def editor_holds(chrome: WebDriver, text: str) -> bool:
    """Whether the editor shows ``text``'s first or last line (Monaco renders only the
    lines in view: after a paste, the end)."""
    lines = chrome.find_element(By.CSS_SELECTOR, "[data-testid=activeEditor] .view-lines")
    shown = " ".join(content(lines).split())
    ends = text.strip().splitlines()
    return any(" ".join(line.split()) in shown for line in (ends[0], ends[-1]))


def dismiss_banner(chrome: WebDriver) -> None:
    """Close Browser's product-analytics notice (for a tidy screenshot)."""
    for close in chrome.find_elements(
            By.XPATH, "//span[contains(text(), 'To help make')]/following-sibling::span"):
        close.click()


def test_browser_connects_and_runs_a_library_query(
        stack: Settings, chrome: WebDriver, shared_device: tuple[str, list[str]],
        screenshot: None) -> None:
    device, cards = shared_device
    connect_browser(chrome, stack)
    q = cypher.query("neighbourhood")
    params = run_in_editor(chrome, browser.param_block(q, {"label": "'Device'",
                                                           "id": f"'{device}'"}))
    wait(chrome, "the parameters set", params_set(params, len(q.params)))
    frame = run_in_editor(chrome, q.body)
    wait(chrome, "the query's rows", streamed(frame, 2 * CARDS))  # the cards and their users
    for card in cards:
        assert f'"{card}"' in content(frame)
    assert "hops" in content(frame) and "confirmed_fraud" in content(frame)
    dismiss_banner(chrome)


def test_guide_plays_styles_and_runs_its_steps(
        stack: Settings, chrome: WebDriver, shared_device: tuple[str, list[str]],
        screenshot: None) -> None:
    """`:play` the served guide, `:style` from its block, run steps from the frame and from
    the sidebar (`shared_device` makes sure the shared-devices step has a row)."""
    connect_browser(chrome, stack)
    titles = re.findall(r"<h3>(.*?)</h3>", browser.render_guide())
    shared = cypher.query("shared_devices")
    with browser.GuideServer() as server:
        played = run_in_editor(chrome, f":play {server.play_url}")
        wait(chrome, "the guide's first slide", lambda _c: titles[0] in played.text)
        style = click_block(chrome, played, f":style {server.style_url}")
        wait(chrome, "the style loaded", lambda _c: "node.ConfirmedFraud" in content(style))
        counts = click_block(chrome, played, cypher.query("graph_counts").body)
        wait(chrome, "the graph counts", streamed(counts))
        assert '"Device"' in content(counts) and '"USED_ON"' in content(counts)
        # the same guide in the sidebar, walked to the shared-devices step
        paste(chrome, f":guide {server.play_url}")  # opens the sidebar, not a frame
        chrome.find_element(By.CSS_SELECTOR, "[data-testid=editor-Run]").click()
        drawer = wait(chrome, "the guide in the sidebar", lambda c: c.find_element(
            By.CSS_SELECTOR, "[data-testid=guidesDrawer]"))
        wait(chrome, "the guide's first slide", lambda _c: titles[0] in drawer.text)
        step = next(i for i, t in enumerate(titles) if "shared by many cards" in t)
        for title in titles[1:step + 1]:
            wait(chrome, "the Next button", lambda c: clicked(c.find_element(
                By.CSS_SELECTOR, "[data-testid=guideNextSlide]")))
            wait(chrome, f"the slide {title!r}", lambda _c, t=title: t in drawer.text)
        params = click_block(chrome, drawer, browser.param_block(shared, {}))
        wait(chrome, "the parameters set", params_set(params, len(shared.params)))
        rows = click_block(chrome, drawer, shared.body)
        wait(chrome, "the shared devices", streamed(rows))
        assert "users" in content(rows) and "risk_score" in content(rows)
    dismiss_banner(chrome)


def test_browser_command_prints_how_to_connect_and_serves_the_guide(stack: Settings) -> None:
    password = require_secret(stack.neo4j.password, "FRAUDGRAPH_NEO4J_PASSWORD")
    for args, shows_password in ((), False), (("--show-password",), True):
        process = subprocess.Popen([FRAUDGRAPH, "browser", *args], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        try:
            lines = read_lines_until(process, ":style ")
            play = next(line.split()[1] for line in lines if line.strip().startswith(":play "))
            with urllib.request.urlopen(play, timeout=10) as response:
                assert "<slide" in response.read().decode()
        finally:
            process.terminate()
            process.wait(timeout=10)
        text = "\n".join(lines)
        assert f"{stack.neo4j.http_url}/browser/" in text and stack.neo4j.uri in text
        shown = password in text  # a bool: a failing assert must not print the secret
        assert shown == shows_password, "password printed" if shown else "password missing"
        assert (str(stack.secrets_path) in text) != shows_password
        assert play.startswith("http://localhost:") and play.endswith("/guide.html")


def read_lines_until(process: subprocess.Popen[str], marker: str) -> list[str]:
    """Output lines up to the one containing ``marker`` (fails after TIMEOUT seconds)."""
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if marker in line:
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(TIMEOUT)
    assert any(marker in line for line in lines), f"no {marker!r} in {lines}"
    return lines
