import Testing
import TLSShim

@Test func openSSLVersionIsThree() {
    #expect(TLSShim.openSSLVersion.hasPrefix("OpenSSL 3"))
}
