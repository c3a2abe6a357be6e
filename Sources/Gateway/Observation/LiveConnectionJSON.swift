import NIOCore

/// The JSON of `/connections` (issue #14; the shape the dashboard and `wsgate tap` read):
/// `{"connections":[C…]}` and `C` for one connection.
enum LiveConnectionJSON {
    static func list(_ rows: [LiveConnectionTable.Row], now: NIODeadline) -> String {
        "{\"connections\":[" + rows.map { Self.object($0, now: now) }.joined(separator: ",") + "]}\n"
    }

    static func object(_ row: LiveConnectionTable.Row, now: NIODeadline) -> String {
        let info = row.info
        let figures = row.figures
        let age = Double((now - info.started).nanoseconds / 1_000_000) / 1000
        let tls = info.tls.map { tls in
            "{\"version\":\(quote(tls.version)),\"cipher\":\(quote(tls.cipher)),\"sni\":\(optional(tls.serverName))}"
        }
        return "{\"id\":\(info.id),\"listener\":\(quote(info.listener)),\"route\":\(quote(info.route)),"
            + "\"client\":\(quote(info.client)),\"upstream\":\(quote(info.upstream)),\"protocol\":\(quote(info.protocol)),"
            + "\"age_seconds\":\(age),\"tls\":\(tls ?? "null"),\"subprotocol\":\(optional(info.subprotocol)),"
            + "\"extensions\":{\"client\":\(optional(info.clientExtensions)),\"upstream\":\(optional(info.upstreamExtensions))},"
            + "\"client_to_upstream\":{\"messages\":\(figures.clientToUpstream.messages),\"bytes\":\(figures.clientToUpstream.bytes)},"
            + "\"upstream_to_client\":{\"messages\":\(figures.upstreamToClient.messages),\"bytes\":\(figures.upstreamToClient.bytes)},"
            + "\"state\":\"\(figures.state.rawValue)\"}"
    }

    private static func quote(_ text: String) -> String { JSONLineLogHandler.quote(text) }

    private static func optional(_ text: String?) -> String { text.map(quote) ?? "null" }
}
