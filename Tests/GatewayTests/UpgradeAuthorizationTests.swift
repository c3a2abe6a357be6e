import Testing

@testable import Gateway

/// ``AuthorizationGrant``: merging, and what it strips from the forwarded target and offer.
@Suite struct UpgradeAuthorizationTests {
    @Test func removedQueryParametersLeaveTheOthersByteForByte() {
        let grant = AuthorizationGrant(removeQueryParameters: ["access_token"])
        #expect(grant.forwardedTarget("/chat?a=1&access_token=x&b=%20") == "/chat?a=1&b=%20")
        #expect(grant.forwardedTarget("/chat?access_token=x") == "/chat")
        #expect(grant.forwardedTarget("/chat?access%5Ftoken=x&access_token&access_token=y") == "/chat")
        #expect(grant.forwardedTarget("/chat?access_tokens=x") == "/chat?access_tokens=x")
        #expect(grant.forwardedTarget("/chat") == "/chat")
        #expect(AuthorizationGrant.none.forwardedTarget("/chat?access_token=x") == "/chat?access_token=x")
    }

    @Test func mergingKeepsOrderAndTheEarlierExpiry() {
        var grant = AuthorizationGrant(addHeaders: [("X-User", "ada")], removeSubprotocols: ["t"], expiresAt: 300)
        grant.merge(AuthorizationGrant(addHeaders: [("X-Team", "blue")], removeHeaders: ["Cookie"], expiresAt: 200))
        #expect(grant.addHeaders.map(\.name) == ["X-User", "X-Team"])
        #expect(grant.removeHeaders == ["Cookie"] && grant.removeSubprotocols == ["t"])
        #expect(grant.expiresAt == 200)
        grant.merge(.none)
        #expect(grant.expiresAt == 200)
        #expect(grant.lowercasedRemovedHeaderNames == ["x-user", "x-team", "cookie"])
        #expect(grant.offeredSubprotocols(["t", "chat"]) == ["chat"])
    }
}
