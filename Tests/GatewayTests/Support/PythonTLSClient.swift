import Foundation

/// One upgrade attempt over its own TLS connection by Python's `ssl` (an independent peer that does
/// not verify the server): the SNI name (`nil`: none), the Host header, the path, a client certificate
/// (`NAME.pem` and `NAME.key` in the directory given to ``PythonTLSClient/run(_:port:certificates:)``)
/// and extra header lines.
struct PythonTLSAttempt: Encodable {
    var label: String
    var sni: String?
    var host: String
    var path: String
    var certificate: String? = nil
    var headers: String = ""
}

/// Upgrade attempts over TLS from Python's `ssl`, each answer read up to the end of its head.
enum PythonTLSClient {
    static let script = #"""
        import json, socket, ssl, sys
        port, directory, attempts = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
        upgrade = ("Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
        for attempt in attempts:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            if attempt.get("certificate"):
                name = attempt["certificate"]
                ctx.load_cert_chain(f"{directory}/{name}.pem", f"{directory}/{name}.key")
            answer, error = b"", None
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                    with ctx.wrap_socket(raw, server_hostname=attempt.get("sni")) as tls:
                        head = f"GET {attempt['path']} HTTP/1.1\r\nHost: {attempt['host']}\r\n{upgrade}{attempt['headers']}\r\n"
                        tls.sendall(head.encode())
                        while b"\r\n\r\n" not in answer:
                            chunk = tls.recv(4096)
                            if not chunk:
                                break
                            answer += chunk
            except OSError as failure:  # ssl.SSLError, ConnectionError, timeouts
                error = failure
            label = attempt["label"]
            if answer:
                text = answer.decode(errors="replace")
                close = "close" if "\r\nconnection: close\r\n" in text.lower() else "keep"
                print(label, text.split("\r\n")[0], close, flush=True)
            elif error is not None:
                print(label, "tls-error", error, flush=True)
            else:
                print(label, "closed", flush=True)
        """#

    /// Runs `attempts` in order against the TLS listener on `port`. `answers` maps each label to the
    /// answer's status line followed by `close` or `keep` (its Connection header), to `closed` (closed
    /// without an answer), or to `tls-error` and the error (a failed handshake, an alert).
    static func run(
        _ attempts: [PythonTLSAttempt],
        port: Int,
        certificates directory: String = "."
    ) async throws -> (status: Int32, output: String, answers: [String: String]) {
        let json = String(decoding: try JSONEncoder().encode(attempts), as: UTF8.self)
        let run = try await runPython(["-c", Self.script, "\(port)", directory, json], timeout: .seconds(60))
        let answers = Dictionary(
            run.output.split(separator: "\n").compactMap { line -> (String, String)? in
                let parts = line.split(separator: " ", maxSplits: 1)
                return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
            },
            uniquingKeysWith: { first, _ in first }
        )
        return (run.status, run.output, answers)
    }
}
