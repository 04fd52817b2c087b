#!/usr/bin/env python3
"""Drives headless Chromium through the director's status page, over the DevTools protocol.

Usage: status_page.py URL SERVER MARKER SCREENSHOT

Loads URL (the page at / of director.metrics_listen), waits until the row of real server
SERVER ("198.18.2.12:80") says "up", then creates the file MARKER (the lab's nginx answers
/health with 500 while it exists) and times two things: when the director's /status.json first
says SERVER is down, and when the page first shows it (then saves a screenshot to SCREENSHOT).
Prints one JSON object: those times, the refresh interval, and every console error and
uncaught exception the page raised. Chromium runs with no network access beyond the URL given:
no background requests, and no host name resolves.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket

DEBUG_PORT = 9333


class DevTools:
    """One page's DevTools session: commands by id, events kept as they come."""

    def __init__(self, url):
        self.socket = websocket.create_connection(url, timeout=10)
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def errors(self):
        found = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append("console: " + " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                found.append("exception: " + details.get("exception", {}).get("description", details.get("text", "")))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                found.append("log: " + params["entry"].get("text", ""))
        return found


def page_target(deadline):
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{DEBUG_PORT}/json/list", timeout=1) as answer:
                for target in json.load(answer):
                    if target.get("type") == "page" and "webSocketDebuggerUrl" in target:
                        return target["webSocketDebuggerUrl"]
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("chromium's DevTools did not come up")


def director_says(url, server):
    with urllib.request.urlopen(url.rstrip("/") + "/status.json", timeout=2) as answer:
        status = json.load(answer)
    for service in status["services"]["services"]:
        for candidate in service["real_servers"]:
            if f"{candidate['address']}:{candidate['port']}" == server:
                return candidate["health"]
    return None


def main():
    url, server, marker, screenshot = sys.argv[1:5]
    profile = tempfile.mkdtemp(prefix="director-chromium-")
    browser = subprocess.Popen(
        ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
         "--disable-extensions", "--disable-domain-reliability", "--metrics-recording-only",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", f"--remote-debugging-port={DEBUG_PORT}", "--remote-debugging-address=127.0.0.1",
         f"--user-data-dir={profile}", "--window-size=1100,660", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page = DevTools(page_target(time.monotonic() + 20))
        for domain in ("Runtime", "Log", "Page"):
            page.call(domain + ".enable")
        page.call("Page.navigate", url=url)
        selector = f'document.querySelector(\'tr[data-server="{server}"]\')'
        deadline = time.monotonic() + 20
        while page.evaluate(selector + "?.dataset.health") != "up":
            if time.monotonic() > deadline:
                shown = page.evaluate("document.body.innerText.slice(0, 600)")
                raise RuntimeError(f"the page never showed {server} up; it shows: {shown!r}; errors: {page.errors()}")
            time.sleep(0.1)
        failed_at = time.monotonic()
        open(marker, "w").close()
        director_down = page_down = None
        deadline = failed_at + 20
        while page_down is None and time.monotonic() < deadline:
            now = time.monotonic()
            if director_down is None and director_says(url, server) == "down":
                director_down = now
            if page.evaluate(selector + "?.dataset.health") == "down":
                page_down = time.monotonic()
                if director_down is None:
                    director_down = page_down
            time.sleep(0.05)
        if page_down is not None:
            shot = page.call("Page.captureScreenshot", format="png")
            with open(screenshot, "wb") as file:
                file.write(base64.b64decode(shot["data"]))
        refresh = page.evaluate("refreshMilliseconds")
        title = page.evaluate("document.title")
        print(json.dumps({
            "title": title,
            "refresh_ms": refresh,
            "director_down_after_s": None if director_down is None else director_down - failed_at,
            "page_down_after_s": None if page_down is None else page_down - failed_at,
            "errors": page.errors(),
        }))
    finally:
        browser.terminate()
        try:
            browser.wait(timeout=10)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
