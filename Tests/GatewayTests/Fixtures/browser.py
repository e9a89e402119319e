#!/usr/bin/env python3
"""browser: headless Chromium driven over the DevTools protocol, one JSON command per line.

Started by the end-to-end tests (and examples/status-page-screenshot.sh). It starts Chromium with
--remote-debugging-pipe (Chromium reads protocol messages on its fd 3 and writes answers on its
fd 4, each a JSON text ended by a NUL byte), opens one page, then reads commands from stdin and
answers each with one JSON line on stdout:

  {"cmd": "goto", "url": U[, "timeout": S]}       -> {"ok": true, "value": {"url": U}}   (after the load event)
  {"cmd": "eval", "expr": JS[, "timeout": S]}     -> {"ok": true, "value": <JSON value>} (promises awaited)
  {"cmd": "screenshot", "path": P[, "full": B]}   -> {"ok": true, "value": {"path": P, "bytes": N}}
  {"cmd": "console"}                              -> {"ok": true, "value": [console lines and exceptions]}
  {"cmd": "dialogs"}                              -> {"ok": true, "value": [messages of dialogs accepted]}
  {"cmd": "quit"}                                 -> {"ok": true, "value": null}, then exits

A failed command answers {"ok": false, "error": "..."}; the driver carries on. The first line,
once the page is ready, is {"ok": true, "ready": true, "chromium_pid": N, "version": "..."}.
Dialogs (confirm, alert) are accepted at once, so a page's confirm() never blocks a test.

Chromium runs in its own process group with a fresh profile in a temporary directory. When
stdin closes, on "quit", on SIGTERM/SIGINT/SIGHUP or on any error, the driver kills that whole
group and removes the directory: no Chromium process outlives it.

Only the standard library is used. Chromium is `$CHROMIUM` when set, else `chromium` (Debian's
package) on PATH.
"""

import base64
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

DEFAULT_TIMEOUT = 15.0


class DriverError(Exception):
    pass


def find_chromium():
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise DriverError("chromium is not installed (Debian package chromium; `.ci/run` installs it) and $CHROMIUM is unset")
    return found


class Chromium:
    """One Chromium process and the DevTools pipe to it."""

    def __init__(self, width=1280, height=900):
        self.profile = tempfile.mkdtemp(prefix="gateway-browser-")
        self.next_id = 0
        self.buffer = b""
        self.session = None
        self.loaded = False
        self.console = []
        self.dialogs = []
        self.process = None
        # Ours: commands go out on to_chromium[1], answers come in on from_chromium[0].
        to_chromium = os.pipe()
        from_chromium = os.pipe()

        def place_pipes():
            # In the child, before exec: its own process group, and the pipe ends on fds 3 and 4.
            # Moved high first, so that neither dup2 overwrites the other end.
            os.setpgid(0, 0)
            os.dup2(to_chromium[0], 100)
            os.dup2(from_chromium[1], 101)
            os.dup2(100, 3)
            os.dup2(101, 4)

        arguments = [
            find_chromium(),
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--user-data-dir=" + self.profile,
            "--remote-debugging-pipe",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-domain-reliability",
            "--no-pings",
            "--hide-scrollbars",
            "--mute-audio",
            "--window-size=%d,%d" % (width, height),
            "about:blank",
        ]
        try:
            self.process = subprocess.Popen(
                arguments,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL if not os.environ.get("BROWSER_DEBUG") else None,
                preexec_fn=place_pipes,
                pass_fds=(3, 4),
                close_fds=True,
            )
        finally:
            os.close(to_chromium[0])
            os.close(from_chromium[1])
        self.out = to_chromium[1]
        self.inp = from_chromium[0]

    # -- the pipe --

    def send(self, method, params=None, session=True, timeout=DEFAULT_TIMEOUT):
        """Sends one command and returns its result, handling events that arrive meanwhile."""
        self.next_id += 1
        ident = self.next_id
        message = {"id": ident, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        data = json.dumps(message).encode() + b"\0"
        while data:
            written = os.write(self.out, data)
            data = data[written:]
        deadline = time.monotonic() + timeout
        while True:
            reply = self.receive(deadline, "an answer to " + method)
            if reply.get("id") == ident:
                if "error" in reply:
                    raise DriverError("%s: %s" % (method, reply["error"].get("message", reply["error"])))
                return reply.get("result", {})
            self.handle_event(reply)

    def receive(self, deadline, what):
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DriverError("timed out waiting for " + what)
            ready, _, _ = select.select([self.inp], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.inp, 1 << 20)
            if not chunk:
                raise DriverError("chromium closed the DevTools pipe (it exited) while waiting for " + what)
            self.buffer += chunk
        text, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(text)

    def pump(self, deadline, until, what):
        """Handles events until `until()` holds or the deadline passes."""
        while not until():
            self.handle_event(self.receive(deadline, what))

    def handle_event(self, message):
        method = message.get("method")
        params = message.get("params", {})
        if method == "Page.loadEventFired":
            self.loaded = True
        elif method == "Page.javascriptDialogOpening":
            self.dialogs.append(params.get("message", ""))
            # Answered without waiting: the page is blocked until then.
            self.next_id += 1
            reply = {"id": self.next_id, "method": "Page.handleJavaScriptDialog", "params": {"accept": True},
                     "sessionId": self.session}
            os.write(self.out, json.dumps(reply).encode() + b"\0")
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", a.get("type")))) for a in params.get("args", []))
            self.remember("console.%s: %s" % (params.get("type"), text))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text")
            self.remember("exception: %s" % text)
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            self.remember("log.%s: %s %s" % (entry.get("level"), entry.get("text"), entry.get("url", "")))

    def remember(self, line):
        self.console.append(line)
        del self.console[:-200]

    # -- the page --

    def open_page(self):
        version = self.send("Browser.getVersion", session=False, timeout=30)
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}, session=False)
        self.session = attached["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Log.enable")
        return version.get("product", "")

    def goto(self, url, timeout):
        self.loaded = False
        result = self.send("Page.navigate", {"url": url}, timeout=timeout)
        if result.get("errorText"):
            raise DriverError("navigating to %s: %s" % (url, result["errorText"]))
        self.pump(time.monotonic() + timeout, lambda: self.loaded, "the load event of " + url)
        return {"url": url}

    def evaluate(self, expression, timeout):
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True, "timeout": int(timeout * 1000)},
            timeout=timeout + 2,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text", "exception")
            raise DriverError("evaluating: " + text)
        return result.get("result", {}).get("value")

    def screenshot(self, path, full):
        params = {"format": "png"}
        if full:
            metrics = self.send("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics.get("contentSize")
            params["captureBeyondViewport"] = True
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        data = base64.b64decode(self.send("Page.captureScreenshot", params, timeout=30)["data"])
        with open(path, "wb") as file:
            file.write(data)
        return {"path": path, "bytes": len(data)}

    # -- the end --

    def close(self):
        """Ends Chromium and every process in its group, and removes the profile. Idempotent."""
        process, self.process = self.process, None
        if process is not None:
            try:
                self.send("Browser.close", session=False, timeout=2)
            except (DriverError, OSError, ValueError):
                pass
            # Wait (bounded) for the browser to exit, without reaping it: until it is reaped its
            # pid, and so its process group id, cannot be reused by another process.
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                try:
                    if os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                        break
                except ChildProcessError:
                    break
                time.sleep(0.02)
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            process.wait()
            # Its children (renderers, zygotes) are not ours to reap; wait (bounded) until they are gone.
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    break
                time.sleep(0.02)
        for fd in ("out", "inp"):
            if getattr(self, fd, None) is not None:
                try:
                    os.close(getattr(self, fd))
                except OSError:
                    pass
                setattr(self, fd, None)
        shutil.rmtree(self.profile, ignore_errors=True)


def answer(payload):
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def serve(browser):
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            command = json.loads(line)
            name = command.get("cmd")
            timeout = float(command.get("timeout", DEFAULT_TIMEOUT))
            if name == "goto":
                value = browser.goto(command["url"], timeout)
            elif name == "eval":
                value = browser.evaluate(command["expr"], timeout)
            elif name == "screenshot":
                value = browser.screenshot(command["path"], bool(command.get("full", True)))
            elif name == "console":
                value = list(browser.console)
            elif name == "dialogs":
                value = list(browser.dialogs)
            elif name == "quit":
                answer({"ok": True, "value": None})
                return
            else:
                raise DriverError("unknown command %r; expected goto, eval, screenshot, console, dialogs or quit" % name)
            answer({"ok": True, "value": value})
        except (DriverError, KeyError, ValueError, TypeError, OSError) as error:
            if isinstance(error, DriverError) and "closed the DevTools pipe" in str(error):
                answer({"ok": False, "error": str(error)})
                return
            answer({"ok": False, "error": "%s: %s" % (type(error).__name__, error)})


def main():
    # A descriptor inherited by accident (a pipe another test was creating when this driver was
    # spawned) must not stay open here for the driver's whole life.
    os.closerange(3, 1 << 16)

    def stop(signum, _frame):
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    browser = None
    try:
        browser = Chromium()
        version = browser.open_page()
        answer({"ok": True, "ready": True, "chromium_pid": browser.process.pid, "version": version})
        serve(browser)
        return 0
    except DriverError as error:
        try:
            answer({"ok": False, "error": str(error)})
        except OSError:
            pass
        return 1
    except BrokenPipeError:
        return 1
    finally:
        if browser is not None:
            browser.close()


if __name__ == "__main__":
    sys.exit(main())
