"""Opens a report in headless Chromium and reports what a reader would see (used by tests and the README shot).

Drives the system's Chromium (Debian package `chromium`) over the DevTools
protocol: loads the page from disk, collects console errors, uncaught
exceptions and failed loads, measures every drawn graph node, and takes a
full-page screenshot. Needs `websocket-client` (the `test` extra).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
import urllib.request

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Every drawn program node: its name and the size of what the browser laid out.
NODES_JS = """JSON.stringify(Array.from(document.querySelectorAll('g.node[data-line]')).map(g => {
  const b = g.getBoundingClientRect(); return [g.dataset.line, b.width, b.height]; }))"""


def find_chromium() -> str | None:
  return next((p for p in map(shutil.which, CANDIDATES) if p), None)


@dataclasses.dataclass
class Rendered:
  errors: list[str]  # console errors, uncaught exceptions, failed loads
  nodes: dict[str, tuple[float, float]]  # program line -> drawn (width, height)
  screenshot: bytes  # PNG


class _Session:
  def __init__(self, url: str, timeout: float):
    import websocket
    self.ws = websocket.create_connection(url, timeout=timeout)
    self.next_id = 0
    self.events: list[dict] = []

  def call(self, method: str, **params) -> dict:
    self.next_id += 1
    self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
    while True:
      msg = json.loads(self.ws.recv())
      if msg.get("id") == self.next_id:
        if "error" in msg:
          raise RuntimeError(f"{method}: {msg['error']}")
        return msg.get("result", {})
      self.events.append(msg)

  def wait_for(self, method: str, timeout: float) -> None:
    end = time.time() + timeout
    while not any(e.get("method") == method for e in self.events):
      if time.time() > end:
        raise TimeoutError(f"no {method} within {timeout} s")
      self.events.append(json.loads(self.ws.recv()))


def _errors(events: list[dict]) -> list[str]:
  out = []
  for e in events:
    m, p = e.get("method"), e.get("params", {})
    if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
      out.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
    elif m == "Runtime.exceptionThrown":
      out.append("exception: " + p.get("exceptionDetails", {}).get("text", ""))
    elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
      out.append("log: " + p["entry"].get("text", ""))
  return out


def render(path: str | os.PathLike, width: int = 1280, timeout: float = 60.0, chromium: str | None = None,
           height: int | None = None) -> Rendered:
  """Loads the page at `path` in headless Chromium; see `Rendered`.

  height: crop the screenshot to the top `height` pixels (default: the whole page).

  Raises:
    FileNotFoundError: no Chromium is installed.
  """
  binary = chromium or find_chromium()
  if binary is None:
    raise FileNotFoundError("no chromium found (Debian: apt-get install chromium)")
  url = pathlib.Path(path).resolve().as_uri()
  # Chromium's helper processes can still be writing the profile after the main one exits; a leftover
  # file in a temporary folder must not turn a rendered page into an error.
  with tempfile.TemporaryDirectory(prefix="report-chromium-", ignore_cleanup_errors=True) as profile:
    proc = subprocess.Popen(
        [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", f"--user-data-dir={profile}",
         f"--window-size={width},900", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
      port_file = pathlib.Path(profile) / "DevToolsActivePort"
      end = time.time() + timeout
      while not (port_file.exists() and port_file.read_text().strip()):
        if time.time() > end or proc.poll() is not None:
          raise RuntimeError("chromium did not start its DevTools endpoint")
        time.sleep(0.1)
      port = int(port_file.read_text().split()[0])
      with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as r:
        target = next(t for t in json.load(r) if t.get("type") == "page")
      s = _Session(target["webSocketDebuggerUrl"], timeout)
      for domain in ("Page", "Runtime", "Log"):
        s.call(f"{domain}.enable")
      s.call("Page.navigate", url=url)
      s.wait_for("Page.loadEventFired", timeout)
      nodes = json.loads(s.call("Runtime.evaluate", expression=NODES_JS, returnByValue=True)["result"]["value"])
      clip = {"clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}} if height else {}
      shot = s.call("Page.captureScreenshot", format="png", captureBeyondViewport=True, **clip)
      s.ws.close()
      return Rendered(_errors(s.events), {n: (w, h) for n, w, h in nodes}, base64.b64decode(shot["data"]))
    finally:
      proc.terminate()
      try:
        proc.wait(10)
      except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(argv=None) -> int:
  """python -m tracr_decompiler.visual.browser PAGE --screenshot PNG [--height H]: what the README shows."""
  import argparse
  parser = argparse.ArgumentParser(description=main.__doc__)
  parser.add_argument("page")
  parser.add_argument("--screenshot", required=True)
  parser.add_argument("--width", type=int, default=1280)
  parser.add_argument("--height", type=int, default=None)
  args = parser.parse_args(argv)
  shown = render(args.page, width=args.width, height=args.height)
  pathlib.Path(args.screenshot).write_bytes(shown.screenshot)
  print(f"{len(shown.nodes)} nodes drawn, {len(shown.errors)} console errors -> {args.screenshot}")
  for e in shown.errors:
    print(e)
  return 1 if shown.errors else 0


if __name__ == "__main__":
  raise SystemExit(main())
