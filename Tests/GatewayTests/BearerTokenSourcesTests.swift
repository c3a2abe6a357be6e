import NIOHTTP1
import Testing

@testable import Gateway

/// Token extraction (`routes[].auth.jwt.token_sources`), pure: which token, from where, and what is
/// stripped from the forwarded request.
@Suite struct BearerTokenSourcesTests {
    typealias Source = GatewayConfiguration.JWTAuthentication.TokenSource

    static func head(_ target: String = "/chat", _ headers: [(String, String)] = []) -> HTTPRequestHead {
        HTTPRequestHead(version: .http1_1, method: .GET, uri: target, headers: HTTPHeaders(headers))
    }

    static func find(_ head: HTTPRequestHead, _ sources: [Source], offered: [String] = []) -> Result<BearerTokenSources.Found, JWTRefusal> {
        BearerTokenSources.find(in: head, sources: sources, offered: offered)
    }

    @Test func sourcesParseFromTheirConfigurationSpelling() {
        #expect(Source("header") == .header)
        #expect(Source("query:access_token") == .query("access_token"))
        #expect(Source("cookie:session") == .cookie("session"))
        #expect(Source("subprotocol") == .subprotocol)
        for bad in ["", "query:", "query:a b", "query:a%20", "cookie:", "cookie:a;b", "Header", "bearer"] {
            #expect(Source(bad) == nil, "\(bad)")
        }
    }

    @Test func theAuthorizationHeaderCarriesABearerTokenWhateverTheSchemeCase() throws {
        for value in ["Bearer abc.def.ghi", "bearer abc.def.ghi", "BEARER   abc.def.ghi"] {
            let found = try Self.find(Self.head("/", [("Authorization", value)]), [.header]).get()
            #expect(found.token == "abc.def.ghi")
            #expect(found.source == .header)
            #expect(found.strip.removeHeaders == ["Authorization"])
        }
    }

    @Test func anotherSchemeIsNotABearerTokenAndIsLeftAlone() throws {
        let found = try Self.find(Self.head("/", [("Authorization", "Basic dXNlcjpwYXNz")]), [.header]).get()
        #expect(found.token == nil)
        #expect(found.strip == .init())
    }

    @Test func aBearerHeaderWithoutExactlyOneTokenIsAnInvalidRequest() {
        for value in ["Bearer", "Bearer ", "Bearer a b"] {
            guard case .failure(let refusal) = Self.find(Self.head("/", [("Authorization", value)]), [.header]) else {
                Issue.record("\(value) accepted")
                continue
            }
            #expect(refusal.outcome == .invalidRequest)
            #expect(refusal.status == 400)
        }
        let twice = Self.find(Self.head("/", [("Authorization", "Bearer a"), ("Authorization", "Bearer b")]), [.header])
        #expect((try? twice.get()) == nil)
    }

    @Test func theQueryParameterIsDecodedAndAlwaysStripped() throws {
        let found = try Self.find(Self.head("/chat?room=1&access_token=a%2Eb.c&x"), [.query("access_token")]).get()
        #expect(found.token == "a.b.c")
        #expect(found.strip.removeQueryParameters == ["access_token"])
        // Stripped even when absent (a later source won) so it can never reach the upstream.
        let absent = try Self.find(Self.head("/chat?room=1", [("Authorization", "Bearer t")]), [.header, .query("access_token")]).get()
        #expect(absent.token == "t")
        #expect(absent.strip.removeQueryParameters == ["access_token"])
    }

    @Test func aNameIsMatchedAsWrittenAndTwoTokensAreRefused() throws {
        #expect(try Self.find(Self.head("/?access_tokens=x&xaccess_token=y"), [.query("access_token")]).get().token == nil)
        guard case .failure(let refusal) = Self.find(Self.head("/?access_token=a&access_token=b"), [.query("access_token")]) else {
            Issue.record("two tokens accepted")
            return
        }
        #expect(refusal.outcome == .invalidRequest)
        #expect((try? Self.find(Self.head("/?access_token="), [.query("access_token")]).get()) == nil)
    }

    @Test func theCookieEntryIsTakenAndTheOtherCookiesAreKept() throws {
        let head = Self.head("/", [("Cookie", "theme=dark; session=\"a.b.c\""), ("Cookie", "lang=en")])
        let found = try Self.find(head, [.cookie("session")]).get()
        #expect(found.token == "a.b.c")
        #expect(found.strip.removeHeaders == ["Cookie"])
        #expect(found.strip.cookie == "theme=dark; lang=en")
        let alone = try Self.find(Self.head("/", [("Cookie", "session=t")]), [.cookie("session")]).get()
        #expect(alone.strip.removeHeaders == ["Cookie"])
        #expect(alone.strip.cookie == nil)
        let other = try Self.find(Self.head("/", [("Cookie", "sessionx=t")]), [.cookie("session")]).get()
        #expect(other.token == nil)
        #expect(other.strip == .init())
    }

    @Test func theKubernetesSubprotocolCarriesTheTokenBase64urlEncodedOrAsIs() throws {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"
        let encoded = BearerTokenSources.subprotocolPrefix + "ZXlKaGJHY2lPaUpTVXpJMU5pSjkuZXlKemRXSWlPaUpoSW4wLmMybG4"
        for entry in [encoded, BearerTokenSources.subprotocolPrefix + jwt] {
            let head = Self.head("/", [("Sec-WebSocket-Protocol", "chat.v1, \(entry)")])
            let found = try Self.find(head, [.subprotocol], offered: ["chat.v1", entry]).get()
            #expect(found.token == jwt)
            #expect(found.strip.removeSubprotocols == [entry])
        }
    }

    /// The token entry is never forwarded, so a browser would fail a connection with no other offer.
    @Test func aTokenSubprotocolAloneIsRefusedWith400() {
        let entry = BearerTokenSources.subprotocolPrefix + "a.b.c"
        let head = Self.head("/", [("Sec-WebSocket-Protocol", entry)])
        guard case .failure(let refusal) = Self.find(head, [.subprotocol], offered: [entry]) else {
            Issue.record("accepted")
            return
        }
        #expect(refusal.outcome == .subprotocol)
        #expect(refusal.status == 400)
        // Also when the route's allow-list dropped everything else (the entry is found in the raw offer).
        #expect((try? Self.find(head, [.subprotocol], offered: []).get()) == nil)
    }

    @Test func aMalformedBearerSubprotocolIsAnInvalidRequest() {
        let head = Self.head("/", [("Sec-WebSocket-Protocol", "chat, \(BearerTokenSources.subprotocolPrefix)!!!")])
        #expect((try? Self.find(head, [.subprotocol], offered: ["chat"]).get()) == nil)
    }

    @Test func theFirstConfiguredSourceThatCarriesATokenWinsAndEveryCarrierIsStripped() throws {
        let entry = BearerTokenSources.subprotocolPrefix + "sub.sub.sub"
        let head = Self.head(
            "/?t=query.query.query",
            [("Authorization", "Bearer header.header.header"), ("Cookie", "c=cookie.cookie.cookie"), ("Sec-WebSocket-Protocol", "v1, \(entry)")]
        )
        let sources: [Source] = [.cookie("c"), .query("t"), .header, .subprotocol]
        let found = try Self.find(head, sources, offered: ["v1", entry]).get()
        #expect(found.token == "cookie.cookie.cookie")
        #expect(found.source == .cookie("c"))
        #expect(found.strip.removeHeaders == ["Cookie", "Authorization"])
        #expect(found.strip.removeQueryParameters == ["t"])
        #expect(found.strip.removeSubprotocols == [entry])
        let reordered = try Self.find(head, [.subprotocol, .header], offered: ["v1", entry]).get()
        #expect(reordered.token == "sub.sub.sub")
    }

    @Test func aSourceNotConfiguredIsNeitherReadNorStripped() throws {
        let head = Self.head("/?access_token=q.q.q", [("Authorization", "Bearer h.h.h")])
        let found = try Self.find(head, [.cookie("session")]).get()
        #expect(found.token == nil)
        #expect(found.strip == .init())
    }

    @Test func base64urlIsStrict() {
        #expect(Base64URL.decode("aGk") == Array("hi".utf8))
        #expect(Base64URL.decode("") == [])
        #expect(Base64URL.decode("aGk=") == nil)
        #expect(Base64URL.decode("a") == nil)
        #expect(Base64URL.decode("aGl") == nil, "non-zero trailing bits")
        #expect(Base64URL.decode("a+b/") == nil)
    }
}
