/// The demo chat in a browser: one HTML page with plain JavaScript (no build step, nothing loaded from
/// elsewhere) that speaks the `/chat` protocol (``DemoChatRoom``) through the gateway. The demo upstream
/// serves it at `GET /` (``DemoHandshake``); `wsgate`'s banner prints its address.
///
/// Why the demo upstream serves it, not the gateway or the admin listener: the gateway's listeners
/// answer WebSocket handshakes only, and the admin listener is an operator's endpoint that a configured
/// gateway keeps; a demo page belongs to the demo. The page is on another origin than the gateway, as a
/// real application's page is, so the gateway's origin policy applies to it as to any browser.
///
/// The WebSocket URL is `?gateway=ws://host:port` (default `ws://127.0.0.1:8080`, the embedded default's
/// ws listener; an `https:` page defaults to `wss://127.0.0.1:8443`, because the gateway refuses an
/// `http:` page on a TLS listener and a browser an `https:` page to `ws:`) plus `/chat?name=…`;
/// `?name=` fills the name. Everything a peer sends (names, messages) is put in the page with
/// `textContent`, never as HTML.
///
/// The element ids are the page's interface for tests: `#gateway`, `#name`, `#join`, `#leave`,
/// `#status` (`data-state` is `idle`, `connecting`, `open` or `closed`), `#online` (one `li` per name),
/// `#messages` (one `li` per message, `.from` and `.text` inside), `#text`, `#send`.
public enum DemoChatPage {
    /// What the page answer carries besides its body: the page may run only its own inline script and
    /// style, and connect only to WebSockets.
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src ws: wss:; img-src data:; form-action 'none'"

    public static let html = #"""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>wsgate demo chat</title>
        <meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
        <style>
        body { font: 15px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 48em; padding: 0 1em; color: #222; }
        form { margin: .5em 0; } input { font: inherit; padding: .2em .4em; } button { font: inherit; }
        #status { color: #555; } #status[data-state=open] { color: #060; } #status[data-state=closed] { color: #a00; }
        main { display: grid; grid-template-columns: 12em 1fr; gap: 1.5em; }
        ul, ol { padding-left: 1.2em; } #messages { list-style: none; padding: 0; max-height: 60vh; overflow-y: auto; }
        .from { font-weight: 600; margin-right: .4em; }
        </style></head>
        <body>
        <h1>wsgate demo chat</h1>
        <form id="join-form">
          <label>Gateway <input id="gateway" size="28"></label>
          <label>Name <input id="name" maxlength="32" size="12" required></label>
          <button id="join">Join</button> <button id="leave" type="button" disabled>Leave</button>
        </form>
        <p id="status" data-state="idle">Pick a name and join.</p>
        <main>
          <section><h2>Online</h2><ul id="online"></ul></section>
          <section><h2>Messages</h2><ol id="messages"></ol>
            <form id="send-form"><input id="text" size="40" autocomplete="off" disabled> <button id="send" disabled>Send</button></form>
          </section>
        </main>
        <script>
        "use strict";
        const $ = (id) => document.getElementById(id);
        const params = new URLSearchParams(location.search);
        const secure = location.protocol === "https:";
        $("gateway").value = params.get("gateway") || (secure ? "wss://127.0.0.1:8443" : "ws://127.0.0.1:8080");
        $("name").value = params.get("name") || "";
        let socket = null;

        function status(state, text) {
          $("status").dataset.state = state;
          $("status").textContent = text;
          const open = state === "open";
          $("text").disabled = !open; $("send").disabled = !open; $("leave").disabled = !open && state !== "connecting";
        }

        function showOnline(names) {
          const list = $("online");
          list.replaceChildren(...names.map((name) => {
            const item = document.createElement("li");
            item.textContent = String(name);
            return item;
          }));
        }

        function showMessage(from, text) {
          const item = document.createElement("li");
          const who = document.createElement("span");
          who.className = "from";
          who.textContent = String(from) + ":";
          const what = document.createElement("span");
          what.className = "text";
          what.textContent = String(text);
          item.append(who, what);
          $("messages").append(item);
          item.scrollIntoView({ block: "nearest" });
        }

        $("join-form").addEventListener("submit", (event) => {
          event.preventDefault();
          if (socket) socket.close(1000);
          const url = $("gateway").value.trim().replace(/\/+$/, "") + "/chat?name=" + encodeURIComponent($("name").value.trim());
          let ws;
          try { ws = new WebSocket(url); } catch (error) { status("closed", "Cannot connect to " + url + ": " + error.message); return; }
          socket = ws;
          status("connecting", "Connecting to " + url + " …");
          ws.onopen = () => { if (socket === ws) status("open", "Connected to " + url + " as " + $("name").value.trim() + "."); };
          ws.onmessage = (event) => {
            if (socket !== ws || typeof event.data !== "string") return;
            let message;
            try { message = JSON.parse(event.data); } catch (error) { return; }
            if (message && message.type === "presence" && Array.isArray(message.online)) showOnline(message.online);
            else if (message && message.type === "message") showMessage(message.from, message.text);
          };
          ws.onclose = (event) => {
            if (socket !== ws) return;
            socket = null;
            showOnline([]);
            status("closed", "Disconnected (close code " + event.code + (event.reason ? ", " + event.reason : "") + ").");
          };
        });

        $("leave").addEventListener("click", () => { if (socket) socket.close(1000, "bye"); });

        $("send-form").addEventListener("submit", (event) => {
          event.preventDefault();
          const text = $("text").value;
          if (!socket || socket.readyState !== WebSocket.OPEN || text === "") return;
          socket.send(text);
          $("text").value = "";
        });
        </script>
        </body></html>
        """#
}
