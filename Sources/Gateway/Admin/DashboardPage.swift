import CoreMetrics

/// The dashboard (issue #14 §3): `GET /` on the admin listener. One HTML page with plain JavaScript, no
/// build step and nothing loaded from elsewhere, that reads the admin API it is served next to:
///
/// - live connections: `GET /connections?limit=500` every second (the JSON of the README's "Admin
///   endpoints and metrics"), one table row per connection (the oldest 500), with a button that taps it;
/// - per-route counters, close codes and TLS handshake failures: `GET /metrics` every second, the
///   Prometheus text parsed in the page (`wsgate_connections_open`, `wsgate_connections_total`,
///   `wsgate_messages_total`, `wsgate_bytes_total`, `wsgate_close_codes_total`,
///   `wsgate_tls_handshake_failures_total`, `wsgate_upgrades_refused_total`); "last minute" is the
///   increase over the page's own samples of the last 60 seconds;
/// - the tap of one connection: `GET /tap?connection=ID` read as a stream (`fetch` and a
///   `ReadableStream` reader), one row per event, `→` client to upstream and `←` upstream to client,
///   the newest 500 kept.
///
/// A bearer token (`admin.token_file`) is taken from the URL fragment, `/#token=…` (a fragment is never
/// sent to a server, so it stays out of access logs), and sent as `Authorization: Bearer` on every
/// request. Payloads, names, headers and reasons are attacker-controlled: the page puts every value in
/// with `textContent`, never as HTML, and its Content-Security-Policy (a `meta` element) allows only its
/// own inline script and style and requests to its own origin, so even a missed escape could neither
/// load nor send anything.
///
/// The element ids are the page's interface for tests: `#status`, `#connection-rows` (a `tr` per
/// connection, `data-id` and `data-client`), `#route-rows`, `#close-rows`, `#tls-rows`, `#refusal-rows`,
/// `#tap-title`, `#tap-state`, `#tap-rows` (a `tr` per event, `data-kind` `open`, `frame`, `close`,
/// `dropped`; a frame row's `.arrow` and `.payload` cells), `#tap-stop`.
enum DashboardPage {
    /// The page, with the names of the metrics it reads filled in from their declarations
    /// (``GatewayMetrics``: a metric's name is spelled once, there).
    static let html = Self.template.replacingOccurrences(of: "/*METRIC_NAMES*/{}", with: Self.metricNames)

    /// The names as a JavaScript object literal, `{closeCodes: …, messages: …}`.
    static var metricNames: String {
        let metrics = GatewayMetrics(factory: NOOPMetricsHandler.instance)
        let names: [(String, any MetricFamily)] = [
            ("connectionsOpen", metrics.connectionsOpen), ("connections", metrics.connections),
            ("messages", metrics.messages), ("bytes", metrics.bytes), ("closeCodes", metrics.closeCodes),
            ("tlsHandshakeFailures", metrics.tlsHandshakeFailures), ("upgradesRefused", metrics.upgradesRefused),
        ]
        return "{" + names.map { "\($0.0): \(JSONLineLogHandler.quote($0.1.descriptor.name))" }.joined(separator: ", ") + "}"
    }

    private static let template = #"""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>wsgate dashboard</title>
        <meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'">
        <meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
        <style>
        body { font: 13px/1.4 system-ui, sans-serif; margin: 1em 1.5em; color: #1d2330; background: #f7f8fa; }
        h1 { font-size: 1.4em; margin: 0 0 .2em; } h2 { font-size: 1.05em; margin: 1.2em 0 .4em; }
        #status { color: #555; } #status.error { color: #b00020; font-weight: 600; }
        table { border-collapse: collapse; background: #fff; box-shadow: 0 0 0 1px #dde1e7; width: 100%; }
        th, td { padding: .25em .6em; text-align: left; border-bottom: 1px solid #eceff3; vertical-align: top; }
        th { background: #eef1f5; font-weight: 600; white-space: nowrap; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
        .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(24em, 1fr)); gap: 0 1.5em; }
        .empty td { color: #888; font-style: italic; }
        #tap-rows td { font-family: ui-monospace, monospace; font-size: 12px; }
        #tap-rows .payload { white-space: pre-wrap; word-break: break-all; max-width: 60em; }
        #tap-rows td:not(.payload) { white-space: nowrap; width: 1%; }
        #tap-rows td.arrow { font-weight: 700; font-size: 15px; } #connection-rows td { white-space: nowrap; } .c2u .arrow { color: #0a6dd8; } .u2c .arrow { color: #9c27b0; }
        tr[data-kind=open] td, tr[data-kind=close] td, tr[data-kind=dropped] td { background: #f3f6ee; }
        tr[data-kind=dropped] td { background: #fff4d6; }
        button { font: inherit; cursor: pointer; } tr.tapped td { background: #e8f0fe; }
        </style></head>
        <body>
        <h1>wsgate</h1>
        <p id="status">Loading…</p>
        <h2>Live connections <small id="connections-note"></small></h2>
        <table id="connections"><thead><tr><th>id</th><th>listener</th><th>route</th><th>client</th><th>upstream</th><th>protocol</th>
        <th>age</th><th>TLS</th><th>subprotocol</th><th>extensions</th><th>→ msgs</th><th>→ bytes</th><th>← msgs</th><th>← bytes</th><th>state</th><th></th></tr></thead>
        <tbody id="connection-rows"></tbody></table>
        <h2>Routes</h2><table><thead><tr><th>listener</th><th>route</th><th>open</th><th>total</th><th>→ msgs</th><th>→ bytes</th><th>← msgs</th><th>← bytes</th></tr></thead>
          <tbody id="route-rows"></tbody></table>
        <div class="grid">
          <section><h2>Close codes</h2><table><thead><tr><th>leg</th><th>code</th><th>by</th><th>last minute</th><th>total</th></tr></thead>
            <tbody id="close-rows"></tbody></table></section>
          <section><h2>TLS handshake failures</h2><table><thead><tr><th>leg</th><th>class</th><th>last minute</th><th>total</th></tr></thead>
            <tbody id="tls-rows"></tbody></table></section>
          <section><h2>Refused upgrades</h2><table><thead><tr><th>listener</th><th>reason</th><th>status</th><th>last minute</th><th>total</th></tr></thead>
            <tbody id="refusal-rows"></tbody></table></section>
        </div>
        <h2 id="tap-title">Tap</h2>
        <p><span id="tap-state">Choose a connection's “tap” button to see its frames.</span> <button id="tap-stop" hidden>Stop</button></p>
        <table><thead><tr><th>time</th><th></th><th>event</th><th>length</th><th>payload / details</th></tr></thead><tbody id="tap-rows"></tbody></table>
        <script>
        "use strict";
        const $ = (id) => document.getElementById(id);
        const token = new URLSearchParams(location.hash.slice(1)).get("token");
        const authorization = token ? { Authorization: "Bearer " + token } : {};
        const TAP_ROWS = 500, CONNECTION_ROWS = 500;
        const METRIC = /*METRIC_NAMES*/{};
        let tapped = null, tapAbort = null, samples = [];

        function cell(text, className) {
          const td = document.createElement("td");
          td.textContent = text === null || text === undefined ? "" : String(text);
          if (className) td.className = className;
          return td;
        }
        function row(cells, attributes) {
          const tr = document.createElement("tr");
          for (const c of cells) tr.append(c instanceof Node ? c : cell(c));
          for (const [name, value] of Object.entries(attributes || {})) tr.setAttribute(name, String(value));
          return tr;
        }
        function fill(body, rows, columns, empty) {
          body.replaceChildren(...(rows.length ? rows : [row([Object.assign(cell(empty), { colSpan: columns })], { class: "empty" })]));
        }
        function number(value) { return Number(value || 0).toLocaleString("en-US"); }
        function status(text, error) { $("status").textContent = text; $("status").className = error ? "error" : ""; }

        async function get(path) {
          const response = await fetch(path, { headers: authorization, cache: "no-store" });
          if (response.status === 401) throw new Error("the admin listener wants a bearer token: open this page as /#token=YOUR_TOKEN");
          if (!response.ok) throw new Error(path + " answered " + response.status);
          return response;
        }

        function tapButton(id) {
          const button = document.createElement("button");
          button.textContent = tapped === id ? "tapping" : "tap";
          button.className = "tap";
          button.addEventListener("click", () => startTap(id));
          const td = document.createElement("td");
          td.append(button);
          return td;
        }

        async function refreshConnections() {
          const list = (await (await get("/connections?limit=" + CONNECTION_ROWS)).json()).connections || [];
          $("connections-note").textContent = list.length >= CONNECTION_ROWS ? "(the oldest " + CONNECTION_ROWS + " are shown; the Routes table counts them all)" : "";
          const rows = list.map((c) => {
            const tls = c.tls ? [c.tls.version, c.tls.cipher, c.tls.sni].filter(Boolean).join(" ") : "";
            const ext = c.extensions ? ["client: " + (c.extensions.client || "none"), "upstream: " + (c.extensions.upstream || "none")].join(", ") : "";
            const up = c.client_to_upstream || {}, down = c.upstream_to_client || {};
            const tr = row([c.id, c.listener, c.route, c.client, c.upstream, c.protocol, Number(c.age_seconds || 0).toFixed(1) + " s", tls,
              c.subprotocol || "", ext, cell(number(up.messages), "n"), cell(number(up.bytes), "n"), cell(number(down.messages), "n"),
              cell(number(down.bytes), "n"), c.state, tapButton(c.id)], { "data-id": c.id, "data-client": c.client });
            if (tapped === c.id) tr.classList.add("tapped");
            return tr;
          });
          fill($("connection-rows"), rows, 16, "No live connections.");
        }

        // Prometheus text format 0.0.4: `name{label="value",…} number`, comments skipped.
        function parseMetrics(text) {
          const series = [];
          for (const line of text.split("\n")) {
            if (!line || line[0] === "#") continue;
            const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
            if (!match) continue;
            const labels = {};
            const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
            let m;
            while ((m = re.exec(match[3] || "")) !== null) labels[m[1]] = m[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
            series.push({ name: match[1], labels, value: Number(match[4]) });
          }
          return series;
        }
        function sum(series, name, keys) {
          const totals = new Map();
          for (const s of series) {
            if (s.name !== name) continue;
            const key = JSON.stringify(keys.map((k) => s.labels[k] || ""));
            totals.set(key, (totals.get(key) || 0) + s.value);
          }
          return totals;
        }
        function lastMinute(name, key, now) {
          const old = samples.find((s) => now - s.time <= 60000);
          if (!old) return 0;
          const before = old.totals[name] && old.totals[name].get(key);
          const after = samples[samples.length - 1].totals[name].get(key);
          return Math.max(0, (after || 0) - (before || 0));
        }
        function counterRows(name, totals, now) {
          return [...totals.entries()].filter(([, total]) => total > 0)
            .sort((a, b) => b[1] - a[1])
            .map(([key, total]) => row([...JSON.parse(key), cell(number(lastMinute(name, key, now)), "n"), cell(number(total), "n")]));
        }

        async function refreshMetrics() {
          const series = parseMetrics(await (await get("/metrics")).text());
          const now = Date.now();
          const totals = {
            closes: sum(series, METRIC.closeCodes, ["side", "code", "by"]),
            tls: sum(series, METRIC.tlsHandshakeFailures, ["leg", "class"]),
            refusals: sum(series, METRIC.upgradesRefused, ["listener", "reason", "status"]),
          };
          samples.push({ time: now, totals });
          samples = samples.filter((s) => now - s.time <= 61000);
          fill($("close-rows"), counterRows("closes", totals.closes, now), 5, "No closes yet.");
          fill($("tls-rows"), counterRows("tls", totals.tls, now), 4, "No TLS handshake failures.");
          fill($("refusal-rows"), counterRows("refusals", totals.refusals, now), 5, "No refused upgrades.");
          const open = sum(series, METRIC.connectionsOpen, ["listener", "route"]);
          const total = sum(series, METRIC.connections, ["listener", "route"]);
          const messages = sum(series, METRIC.messages, ["listener", "route", "direction"]);
          const bytes = sum(series, METRIC.bytes, ["listener", "route", "direction"]);
          const keys = new Set([...open.keys(), ...total.keys()]);
          const routes = [...keys].sort().map((key) => {
            const [listener, route] = JSON.parse(key);
            const d = (map, direction) => map.get(JSON.stringify([listener, route, direction])) || 0;
            return row([listener, route, cell(number(open.get(key)), "n"), cell(number(total.get(key)), "n"),
              cell(number(d(messages, "client_to_upstream")), "n"), cell(number(d(bytes, "client_to_upstream")), "n"),
              cell(number(d(messages, "upstream_to_client")), "n"), cell(number(d(bytes, "upstream_to_client")), "n")]);
          });
          fill($("route-rows"), routes, 8, "No connections yet.");
        }

        function tapTime(seconds) {
          const date = new Date(Number(seconds) * 1000);
          return isNaN(date) ? "" : date.toLocaleTimeString("en-GB", { hour12: false }) + "." + String(date.getMilliseconds()).padStart(3, "0");
        }
        function showEvent(event) {
          let tr;
          if (event.event === "frame") {
            const c2u = event.direction === "client_to_upstream";
            let payload = event.payload === null || event.payload === undefined ? "(not captured)" : String(event.payload);
            if (event.opcode === "close" && event.payload_encoding === "base64") {
              // RFC 6455 §5.5.1: a two-byte code, then a UTF-8 reason.
              try {
                const bytes = Uint8Array.from(atob(String(event.payload)), (c) => c.charCodeAt(0));
                if (bytes.length >= 2) payload = "code " + ((bytes[0] << 8) | bytes[1]) + (bytes.length > 2 ? " “" + new TextDecoder().decode(bytes.slice(2)) + "”" : "");
              } catch (error) { payload = "base64: " + payload; }
            } else if (event.payload_encoding === "base64") payload = "base64: " + payload;
            if (event.truncated) payload += " …(truncated)";
            if (event.compressed) payload += " (deflated)";
            tr = row([tapTime(event.time), cell(c2u ? "→" : "←", "arrow"), String(event.opcode) + (event.fin === false ? " (more)" : ""),
              cell(number(event.length), "n"), cell(payload, "payload")], { "data-kind": "frame", class: c2u ? "c2u" : "u2c" });
          } else if (event.event === "open") {
            const request = event.request || {};
            tr = row([tapTime(event.time), "", "open", "", cell(String(request.method) + " " + String(request.target) + " from " + String(event.client), "payload")], { "data-kind": "open" });
          } else if (event.event === "close") {
            tr = row([tapTime(event.time), "", "close", "", cell((event.code === null ? "no code" : String(event.code)) + (event.reason ? " “" + String(event.reason) + "”" : "")
              + " by " + String(event.by) + " (" + String(event.leg) + " leg)", "payload")], { "data-kind": "close" });
          } else if (event.event === "dropped") {
            tr = row(["", "", "dropped", "", cell(number(event.count) + " events dropped: this tap fell behind", "payload")], { "data-kind": "dropped" });
          } else {
            return;
          }
          const body = $("tap-rows");
          body.append(tr);
          while (body.childElementCount > TAP_ROWS) body.firstElementChild.remove();
        }

        async function startTap(id) {
          stopTap();
          tapped = id;
          const abort = new AbortController();
          tapAbort = abort;
          $("tap-rows").replaceChildren();
          $("tap-title").textContent = "Tap of connection " + id;
          $("tap-state").textContent = "Connecting to /tap?connection=" + id + " …";
          $("tap-stop").hidden = false;
          try {
            const response = await fetch("/tap?connection=" + encodeURIComponent(id), { headers: authorization, signal: abort.signal });
            if (!response.ok) throw new Error("/tap answered " + response.status);
            // The answer's head is sent once the tap is attached: from here on no frame is missed.
            $("tap-state").textContent = "Tapping connection " + id + " (newest " + TAP_ROWS + " events).";
            const reader = response.body.getReader();
            const decoder = new TextDecoder();
            let pending = "";
            for (;;) {
              const { value, done } = await reader.read();
              if (done) break;
              pending += decoder.decode(value, { stream: true });
              let newline;
              while ((newline = pending.indexOf("\n")) >= 0) {
                const line = pending.slice(0, newline);
                pending = pending.slice(newline + 1);
                if (!line.trim()) continue;
                try { showEvent(JSON.parse(line)); } catch (error) { /* not one event: skipped */ }
              }
              if (pending.length > 8 << 20) pending = "";
            }
            if (tapAbort === abort) $("tap-state").textContent = "The stream of connection " + id + " ended.";
          } catch (error) {
            if (tapAbort === abort && error.name !== "AbortError") $("tap-state").textContent = "Tap failed: " + error.message;
          }
        }
        function stopTap() {
          if (tapAbort) { tapAbort.abort(); tapAbort = null; }
          if (tapped !== null) $("tap-state").textContent = "Stopped tapping connection " + tapped + ".";
          tapped = null;
          $("tap-stop").hidden = true;
        }
        $("tap-stop").addEventListener("click", stopTap);

        async function tick() {
          try {
            await Promise.all([refreshConnections(), refreshMetrics()]);
            status("Updated " + new Date().toLocaleTimeString("en-GB", { hour12: false }) + " · every second" + (token ? " · with a bearer token" : ""));
          } catch (error) {
            status(error.message, true);
          }
          setTimeout(tick, 1000);
        }
        tick();
        </script>
        </body></html>
        """#
}
