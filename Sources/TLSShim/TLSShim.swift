internal import COpenSSL
import Synchronization

/// TLS over the system OpenSSL as SwiftNIO channel handlers (issue 3 builds it out).
public enum TLSShim {
    /// The version string of the OpenSSL library linked at run time, such as "OpenSSL 3.0.19 ...".
    public static var openSSLVersion: String {
        String(cString: OpenSSL_version(OPENSSL_VERSION))
    }

    /// How many OpenSSL connection objects (`SSL*` with their two BIOs) are alive in this process: one
    /// per TLS connection, freed when its handler goes. A count that does not return to its baseline
    /// once the connections are gone is a leaked handler (RELIABILITY T-09: "no leaked OpenSSL
    /// objects"); the fault tests assert it after their storms.
    public static var liveConnections: Int { TLSConnection.live.load(ordering: .relaxed) }
}
