"""Opens a report in headless Chromium and reports what a reader would see (used by tests and the docs' screenshot).

Drives the system's Chromium (Debian packages `chromium` and `chromium-driver`) through Selenium's WebDriver,
pointed at the installed browser and driver so nothing is downloaded: loads the page from disk, collects
console errors, uncaught exceptions and failed loads (the browser log's SEVERE entries), measures every drawn
graph node, and takes a full-page screenshot. Needs `selenium` (the `test` extra).

A maintained WebDriver client replaces the hand-written DevTools-protocol client this module once was: Chromium
150 began refusing DevTools websocket connections from origins it was not told to allow, which that client sent;
chromedriver and Selenium follow such changes release by release.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import tempfile

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Debian puts chromedriver on PATH and also beside the browser; other distributions use one of the two.
DRIVERS = ("chromedriver", "/usr/lib/chromium/chromedriver", "/usr/lib/chromium-browser/chromedriver")
# Every drawn program node: its name and the size of what the browser laid out.
NODES_JS = """return JSON.stringify(Array.from(document.querySelectorAll('g.node[data-line]')).map(g => {
  const b = g.getBoundingClientRect(); return [g.dataset.line, b.width, b.height]; }))"""
PAGE_HEIGHT_JS = "return Math.ceil(document.documentElement.scrollHeight)"


def find_chromium() -> str | None:
  return next((p for p in map(shutil.which, CANDIDATES) if p), None)


def find_chromedriver() -> str | None:
  return next((p for p in map(shutil.which, DRIVERS) if p), None)


def missing() -> str | None:
  """Why a page cannot be rendered here (one line), or None when it can."""
  if find_chromium() is None:
    return "Chromium is not installed (Debian: apt-get install chromium chromium-driver)"
  if find_chromedriver() is None:
    return "chromedriver is not installed (Debian: apt-get install chromium-driver)"
  try:
    import selenium  # noqa: F401
  except ImportError:
    return "selenium is not installed (pip install 'tracr-decompiler[test]')"
  return None


@dataclasses.dataclass
class Rendered:
  errors: list[str]  # console errors, uncaught exceptions, failed loads
  nodes: dict[str, tuple[float, float]]  # program line -> drawn (width, height)
  screenshot: bytes  # PNG


def render(path: str | os.PathLike, width: int = 1280, timeout: float = 60.0, chromium: str | None = None,
           height: int | None = None) -> Rendered:
  """Loads the page at `path` in headless Chromium; see `Rendered`.

  height: crop the screenshot to the top `height` pixels (default: the whole page).

  Raises:
    FileNotFoundError: no Chromium, chromedriver or selenium is installed (the message says which).
  """
  reason = None if chromium and find_chromedriver() else missing()
  if reason:
    raise FileNotFoundError(reason)
  import base64

  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service
  url = pathlib.Path(path).resolve().as_uri()
  # Chromium's helper processes can still be writing the profile after the driver quits; a leftover file in
  # a temporary folder must not turn a rendered page into an error.
  with tempfile.TemporaryDirectory(prefix="report-chromium-", ignore_cleanup_errors=True) as profile:
    options = webdriver.ChromeOptions()
    options.binary_location = chromium or find_chromium() or ""
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                f"--user-data-dir={profile}", f"--window-size={width},900"):
      options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=find_chromedriver()), options=options)
    try:
      driver.set_page_load_timeout(timeout)
      driver.set_script_timeout(timeout)
      driver.get(url)  # returns after the load event
      nodes = json.loads(driver.execute_script(NODES_JS))
      page_height = height or int(driver.execute_script(PAGE_HEIGHT_JS))
      clip = {"x": 0, "y": 0, "width": width, "height": page_height, "scale": 1}
      shot = driver.execute_cdp_cmd("Page.captureScreenshot",
                                    {"format": "png", "captureBeyondViewport": True, "clip": clip})
      errors = [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    finally:
      driver.quit()
  return Rendered(errors, {n: (w, h) for n, w, h in nodes}, base64.b64decode(shot["data"]))


def main(argv=None) -> int:
  """python -m tracr_decompiler.visual.browser PAGE --screenshot PNG [--height H]: what docs/usage.md shows."""
  import argparse
  parser = argparse.ArgumentParser(description=main.__doc__)
  parser.add_argument("page")
  parser.add_argument("--screenshot", required=True)
  parser.add_argument("--width", type=int, default=1280)
  parser.add_argument("--height", type=int, default=None)
  args = parser.parse_args(argv)
  reason = missing()
  if reason:
    print(f"error: {reason}")
    return 2
  if not pathlib.Path(args.page).is_file():
    print(f"error: no such page: {args.page}")
    return 2
  shown = render(args.page, width=args.width, height=args.height)
  pathlib.Path(args.screenshot).write_bytes(shown.screenshot)
  print(f"{len(shown.nodes)} nodes drawn, {len(shown.errors)} console errors -> {args.screenshot}")
  for e in shown.errors:
    print(e)
  return 1 if shown.errors else 0


if __name__ == "__main__":
  raise SystemExit(main())
