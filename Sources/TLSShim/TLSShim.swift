internal import COpenSSL

/// TLS over the system OpenSSL as SwiftNIO channel handlers (issue 3 builds it out).
public enum TLSShim {
    /// The version string of the OpenSSL library linked at run time, such as "OpenSSL 3.0.19 ...".
    public static var openSSLVersion: String {
        String(cString: OpenSSL_version(OPENSSL_VERSION))
    }
}
