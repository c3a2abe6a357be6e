import Testing

@testable import Frames

/// ``HTTPSyntax``: RFC 9110 §5.6 tokens, optional whitespace and comma lists.
@Suite struct HTTPSyntaxTests {
    @Test func tokensAreOneOrMoreTchars() {
        #expect(HTTPSyntax.isToken("chat.v2"))
        #expect(HTTPSyntax.isToken("!#$%&'*+-.^_`|~09azAZ"))
        for notToken in ["", "a b", "a,b", "a;b", "\"a\"", "a=b", "a/b", "é", "a\tb", "(a)", "a\u{7F}"] {
            #expect(!HTTPSyntax.isToken(notToken), "\(notToken)")
        }
        // Every byte: exactly the tchar set of RFC 9110 §5.6.2.
        let tchars = Set("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
        for byte in UInt8(0)...UInt8(127) {
            #expect(HTTPSyntax.isToken(String(decoding: [byte], as: UTF8.self)) == tchars.contains(byte), "byte \(byte)")
        }
    }

    @Test func optionalWhitespaceIsSpacesAndTabsOnly() {
        #expect(HTTPSyntax.trimmingOWS(" \t a b \t") == "a b")
        #expect(HTTPSyntax.trimmingOWS(" \t ") == "")
        #expect(HTTPSyntax.trimmingOWS("\r\na\n") == "\r\na\n", "CR and LF are not OWS")
        #expect(HTTPSyntax.trimmingOWS(" é ") == "é")
    }

    @Test func commaListsSpanFieldLinesAndDropEmptyElements() {
        #expect(HTTPSyntax.commaList(["a, b", " ,c,, ", "d"]) == ["a", "b", "c", "d"])
        #expect(HTTPSyntax.commaList([",", " "]).isEmpty)
        #expect(HTTPSyntax.lowercasedTokens(["Keep-Alive, UPGRADE"]) == ["keep-alive", "upgrade"])
        #expect(HTTPSyntax.lists("upgrade", in: ["keep-alive", "Upgrade"]))
        #expect(!HTTPSyntax.lists("upgrade", in: ["upgrades, keep-alive"]))
    }
}
