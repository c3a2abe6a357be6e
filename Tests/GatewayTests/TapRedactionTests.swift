import NIOHTTP1
import Testing

@testable import Gateway

/// What the tap's `open` event never shows (issue #14 §2), whatever the casing or encoding a client uses.
@Suite struct TapRedactionTests {
    @Test func credentialHeadersAreRedactedWhateverTheirCasing() {
        let headers = HTTPHeaders([
            ("AUTHORIZATION", "Bearer abc"), ("cOoKiE", "session=1"), ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Proxy-Authorization", "Basic x"), ("Set-Cookie", "a=b"), ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            ("X-Api-Secret", "zzz"), ("Host", "example.com"), ("Origin", "https://example.com"),
        ])
        let redaction = TapRedaction(extraHeaders: ["x-API-secret"])
        let shown = redaction.redactedHeaders(headers)
        #expect(shown.map(\.0) == headers.map(\.name), "names and order are kept")
        #expect(shown.filter { $0.1 == TapRedaction.marker }.count == 7)
        #expect(shown.first { $0.0 == "Host" }?.1 == "example.com")
        #expect(shown.first { $0.0 == "Origin" }?.1 == "https://example.com")
        #expect(TapRedaction().redactedHeaders(headers).first { $0.0 == "X-Api-Secret" }?.1 == "zzz", "not configured: kept")
    }

    @Test func queryTokensAreRedactedWhateverTheirCasingOrEncoding() {
        let redaction = TapRedaction(extraQueryParameters: ["Session"])
        #expect(redaction.redactedTarget("/chat") == "/chat")
        #expect(redaction.redactedTarget("/chat?name=a") == "/chat?name=a")
        #expect(redaction.redactedTarget("/chat?access_token=abc&name=a") == "/chat?access_token=[redacted]&name=a")
        #expect(
            redaction.redactedTarget("/c?TOKEN=1&Jwt=2&id_token=3&key=4&api_key=5")
                == "/c?TOKEN=[redacted]&Jwt=[redacted]&id_token=[redacted]&key=[redacted]&api_key=[redacted]"
        )
        #expect(redaction.redactedTarget("/c?acc%65ss%5Ftoken=abc") == "/c?acc%65ss%5Ftoken=[redacted]")
        #expect(redaction.redactedTarget("/c?api%5fKEY=x&x=token") == "/c?api%5fKEY=[redacted]&x=token", "a value named token is no secret")
        #expect(redaction.redactedTarget("/c?session=s&token") == "/c?session=[redacted]&token=[redacted]")
        #expect(redaction.redactedTarget("/c?token=a&token=b") == "/c?token=[redacted]&token=[redacted]")
        #expect(redaction.redactedTarget("/c?&&token=a=b#frag") == "/c?&&token=[redacted]#frag")
        #expect(redaction.redactedTarget("/c?tokens=a&my_token=b") == "/c?tokens=a&my_token=b")
    }

    /// Issue #13: a JWT offered as a subprotocol, or in a route's own `query:NAME` source, is no more shown
    /// than one in `Authorization`.
    @Test func bearerTokensInTheSubprotocolOfferAndInAJWTRoutesQuerySourceAreRedacted() {
        let entry = BearerTokenSources.subprotocolPrefix + "ZXlKaGJHY2lPaUpTVXpJMU5pSjk"
        let shown = TapRedaction().redactedHeaders(HTTPHeaders([("Sec-WebSocket-Protocol", "chat.v1,\(entry) , v2")]))
        #expect(shown[0].1 == "chat.v1, \(BearerTokenSources.subprotocolPrefix)[redacted], v2")
        #expect(TapRedaction().redactedHeaders(HTTPHeaders([("Sec-WebSocket-Protocol", "chat.v1, v2")]))[0].1 == "chat.v1, v2")
        var jwt = GatewayConfiguration.JWTAuthentication(jwks: "k.json")
        jwt.tokenSources = [.header, .query("auth"), .cookie("s")]
        #expect(TapRedaction().redactedTarget("/c?auth=abc&x=1") == "/c?auth=abc&x=1")
        #expect(TapRedaction().including(jwt).redactedTarget("/c?auth=abc&x=1") == "/c?auth=[redacted]&x=1")
        #expect(TapRedaction().including(nil) == TapRedaction())
    }
}
