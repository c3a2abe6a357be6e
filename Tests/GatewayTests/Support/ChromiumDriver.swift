import Foundation
import Testing

/// Scenario runs in headless Chromium, driven over the DevTools protocol (CDP) by the provisioned
/// Python, as ``ChromiumTests`` does: `--remote-debugging-pipe` (CDP on fds 3 and 4), several pages
/// (targets) in one browser, each step a JavaScript condition polled until it holds or its deadline
/// passes. A scenario prints `OK <step>` per step, `DONE` at the end, or `FAIL <step>: <detail>` with
/// the page's text and the browser's console, and exits non-zero.
enum ChromiumDriver {
    /// Runs `scenario` (Python, appended to ``library``) with `arguments` (after the Chromium path),
    /// bounded by `timeout`. Returns the `OK`/`DONE`/`FAIL` lines and all output.
    static func run(
        _ scenario: String,
        chromium: String,
        arguments: [String],
        timeout: Duration = .seconds(90)
    ) async throws -> (status: Int32, output: String) {
        try await runPython(["-c", Self.library + "\n" + scenario, chromium] + arguments, timeout: timeout)
    }

    /// Records one issue per `FAIL` line, or for a run that printed no `DONE`.
    static func expectDone(_ run: (status: Int32, output: String), sourceLocation: SourceLocation = #_sourceLocation) {
        let lines = run.output.split(separator: "\n")
        // The steps, in the test log, pass or fail.
        print(lines.filter { $0.hasPrefix("OK ") || $0.hasPrefix("FAIL ") || $0 == "DONE" }.joined(separator: "\n"))
        if let failure = lines.first(where: { $0.hasPrefix("FAIL") }) {
            Issue.record("\(failure)\n\(run.output)", sourceLocation: sourceLocation)
        } else if run.status != 0 || !lines.contains("DONE") {
            Issue.record("the browser scenario did not finish (status \(run.status)):\n\(run.output)", sourceLocation: sourceLocation)
        }
    }

    /// The CDP client. `Browser(chromium, profile, flags)` starts Chromium; `browser.open(url)` a page;
    /// `page.wait(step, js, seconds)` polls `js` until it is truthy; `page.eval(js)`;
    /// `page.screenshot(path)`; `page.close()`; `browser.close()`. `fail(step, detail)` ends the run.
    static let library = #"""
        import base64, hashlib, json, os, subprocess, sys, time
        BROWSERS = []
        def spki_pin(cert):
            pubkey = subprocess.run(["openssl", "x509", "-in", cert, "-pubkey", "-noout"], check=True, capture_output=True).stdout
            spki = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pubkey, check=True, capture_output=True).stdout
            return base64.b64encode(hashlib.sha256(spki).digest()).decode()
        def fail(step, detail):
            print("FAIL %s: %s" % (step, detail), flush=True)
            for browser in BROWSERS:
                for page in browser.pages:
                    try: print("PAGE %s: %s" % (page.name, json.dumps(page.eval("document.body ? document.body.innerText : ''"))[:4000]), flush=True)
                    except BaseException: pass
                for entry in browser.logs: print("LOG " + entry.replace("\n", " "), flush=True)
                browser.close()
            sys.exit(1)
        def ok(step): print("OK " + step, flush=True)
        class Browser:
            def __init__(self, chromium, profile, flags, deadline):
                self.deadline, self.buffer, self.next_id, self.logs, self.pages = deadline, b"", 0, [], []
                to_chrome_r, self.to_chrome = os.pipe()
                self.from_chrome, from_chrome_w = os.pipe()
                flags = ["--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu", "--no-first-run",
                         "--disable-extensions", "--disable-background-networking", "--window-size=1280,900",
                         "--user-data-dir=" + profile] + flags
                shell = 'exec "$0" "$@" 3<&%d 4>&%d' % (to_chrome_r, from_chrome_w)
                self.process = subprocess.Popen(["/bin/sh", "-c", shell, chromium] + flags + ["about:blank"],
                    pass_fds=(to_chrome_r, from_chrome_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                os.close(to_chrome_r); os.close(from_chrome_w)
                BROWSERS.append(self)
            def call(self, method, params=None, session=None):
                self.next_id += 1
                wanted = self.next_id
                message = {"id": wanted, "method": method, "params": params or {}}
                if session: message["sessionId"] = session
                os.write(self.to_chrome, json.dumps(message).encode() + b"\0")
                while True:
                    while b"\0" not in self.buffer:
                        chunk = os.read(self.from_chrome, 1 << 20)
                        if not chunk: raise SystemExit("chromium closed the pipe")
                        self.buffer += chunk
                    raw, self.buffer = self.buffer.split(b"\0", 1)
                    reply = json.loads(raw)
                    method_name, params = reply.get("method"), reply.get("params", {})
                    if method_name == "Log.entryAdded":
                        self.logs.append(params["entry"].get("text", ""))
                    elif method_name == "Runtime.consoleAPICalled":
                        self.logs.append("console.%s %s" % (params.get("type"), " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))))
                    elif method_name == "Runtime.exceptionThrown":
                        self.logs.append("exception " + json.dumps(params.get("exceptionDetails", {}))[:500])
                    if reply.get("id") == wanted:
                        if "error" in reply: raise SystemExit("CDP error in %s: %s" % (method, reply["error"]))
                        return reply["result"]
            def open(self, name, url):
                target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
                session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
                for domain in ("Log.enable", "Runtime.enable", "Page.enable"): self.call(domain, session=session)
                self.call("Page.navigate", {"url": url}, session)
                page = Page(self, name, target, session)
                self.pages.append(page)
                page.wait("%s loads" % name, "document.readyState === 'complete' && location.href !== 'about:blank'", 20)
                return page
            def close(self):
                try: self.call("Browser.close")
                except BaseException: pass
                try: self.process.wait(timeout=10)
                except subprocess.TimeoutExpired: self.process.kill()
        class Page:
            def __init__(self, browser, name, target, session):
                self.browser, self.name, self.target, self.session = browser, name, target, session
            def eval(self, expression):
                result = self.browser.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, self.session)
                if "exceptionDetails" in result: raise RuntimeError(json.dumps(result["exceptionDetails"])[:500])
                return result["result"].get("value")
            def wait(self, step, expression, seconds):
                deadline = min(time.monotonic() + seconds, self.browser.deadline)
                value = None
                while True:
                    try: value = self.eval(expression)
                    except RuntimeError as error: value = "exception: %s" % error
                    if value and not (isinstance(value, str) and value.startswith("exception: ")):
                        ok(step)
                        return value
                    if time.monotonic() >= deadline: fail(step, "not within %ss (last value: %s)" % (seconds, json.dumps(value)[:1000]))
                    time.sleep(0.1)
            def screenshot(self, path):
                data = self.browser.call("Page.captureScreenshot", {"format": "png"}, self.session)["data"]
                with open(path, "wb") as f: f.write(base64.b64decode(data))
            def close(self):
                self.browser.call("Target.closeTarget", {"targetId": self.target})
                self.browser.pages.remove(self)
        """#
}
