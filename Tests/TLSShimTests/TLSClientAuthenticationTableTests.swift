import Testing

@testable import TLSShim

/// The client-certificate settings of each TLS name (``TLSClientAuthenticationTable``): a Host selects
/// an entry as the SNI callback does, and equal settings have equal keys whatever the host.
@Suite struct TLSClientAuthenticationTableTests {
    static func auth(
        _ mode: TLSClientAuthentication.Mode = .require,
        depth: Int = 2,
        roots: String = Fixtures.ca.certificatePEM
    ) -> TLSClientAuthentication {
        TLSClientAuthentication(trustRoots: .pem(roots), mode: mode, verifyDepth: depth)
    }

    /// Names select entries as the SNI callback does: exact, then one-label wildcard, case and a
    /// trailing dot ignored, anything else (and no name) the default.
    @Test func aHostSelectsTheEntryTheSNIWould() throws {
        let table = try TLSClientAuthenticationTable(hosts: [["secure.test"], ["*.wild.test"]], keys: ["d", "s", "w"])
        #expect(table.entry(forServerName: "SECURE.test.") == 0)
        #expect(table.entry(forServerName: "a.wild.test") == 1)
        #expect(table.entry(forServerName: "a.b.wild.test") == nil)
        #expect(table.entry(forServerName: nil) == nil)
        #expect(table.key(forEntry: nil) == "d")
        #expect(table.key(forEntry: 1) == "w")
        #expect(throws: TLSError.self) { try TLSClientAuthenticationTable(hosts: [["a.test"]], keys: ["d"]) }
    }

    /// A Host naming another entry is a difference only when that entry's settings differ.
    @Test func aHostWithOtherSettingsIsTold() throws {
        let table = try TLSClientAuthenticationTable(
            hosts: [["secure.test"], ["open.test"], ["open2.test"], ["secure2.test"]],
            keys: ["optional", "require", "none", "none", "require"]
        )
        let viaOpen = TLSConnectionInfo.ClientAuthenticationScope(table: table, selectedEntry: 1)
        #expect(viaOpen.hostHasOtherSettings("secure.test"))
        #expect(viaOpen.hostHasOtherSettings("unknown.test"))  // the default: optional
        #expect(!viaOpen.hostHasOtherSettings("open2.test"))
        #expect(!viaOpen.hostHasOtherSettings("OPEN.test"))
        let viaSecure = TLSConnectionInfo.ClientAuthenticationScope(table: table, selectedEntry: 0)
        #expect(!viaSecure.hostHasOtherSettings("secure2.test"))
        #expect(viaSecure.hostHasOtherSettings("open.test"))
        let viaDefault = TLSConnectionInfo.ClientAuthenticationScope(table: table, selectedEntry: nil)
        #expect(viaDefault.hostHasOtherSettings("secure.test"))
        #expect(!viaDefault.hostHasOtherSettings("other.test"))
    }

    /// A built context: the key covers mode, depth and the CA set (not its order), not the host; the
    /// handshake reports the entry its SNI selected.
    @Test func theContextKeysTheSettingsAndTheHandshakeReportsItsEntry() throws {
        let both = Fixtures.ca.certificatePEM + Fixtures.otherCA.certificatePEM
        let reversed = Fixtures.otherCA.certificatePEM + Fixtures.ca.certificatePEM
        let names = ["a", "b", "c", "d", "e", "f", "g", "h"]
        let auths: [TLSClientAuthentication?] = [
            Self.auth(), Self.auth(), Self.auth(depth: 3), Self.auth(.optional), nil,
            Self.auth(roots: Fixtures.otherCA.certificatePEM), Self.auth(roots: both), Self.auth(roots: reversed),
        ]
        let server = try TLSServerContext(
            configuration: Fixtures.serverConfiguration {
                $0.virtualHosts = zip(names, auths).map { name, auth in
                    TLSVirtualHost(serverNames: ["\(name).test"], identity: Fixtures.localhost.identity, clientAuthentication: auth)
                }
            }
        )
        let table = server.clientAuthenticationTable
        let key = { (name: String) in table.key(forEntry: table.entry(forServerName: "\(name).test")) }
        #expect(key("a") == key("b"))
        #expect(key("g") == key("h"))
        #expect(key("e") == table.key(forEntry: nil))
        #expect(Set(["a", "c", "d", "e", "f", "g"].map(key)).count == 6)

        let pair = try InMemoryPair(
            server: server,
            client: try TLSClientContext(
                configuration: Fixtures.clientConfiguration {
                    $0.certificateVerification = .noHostnameVerification
                }
            ),
            serverName: "e.test"
        )
        try pair.handshake()
        let scope = try #require(pair.serverHandler.connectionInfo?.clientAuthentication)
        #expect(scope.selectedEntry == 4)
        #expect(scope.hostHasOtherSettings("a.test"))
        #expect(!scope.hostHasOtherSettings("localhost"))
        #expect(pair.clientHandler.connectionInfo?.clientAuthentication == nil)
        _ = try pair.finish()
    }
}
