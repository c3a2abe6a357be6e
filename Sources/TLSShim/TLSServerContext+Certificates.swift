internal import COpenSSL

extension TLSServerContext {
    /// What each identity of this context presents, for logs (RELIABILITY G-03: a reload records the old
    /// and the new certificate): the default identity first, then the virtual hosts in configuration
    /// order, each as `subject=…, serial=…, not_after=…` read from the loaded `SSL_CTX`, so it describes
    /// exactly what handshakes present, not what the files hold now.
    public var certificateSummaries: [String] {
        ([self.defaultContext] + self.hostContexts).map { context in
            guard let certificate = SSL_CTX_get0_certificate(context) else { return "no certificate" }
            let subject = distinguishedName(X509_get_subject_name(certificate)) ?? "?"
            let serial = bioText { i2a_ASN1_INTEGER($0, X509_get_serialNumber(certificate)) } ?? "?"
            let notAfter = bioText { ASN1_TIME_print($0, X509_get0_notAfter(certificate)) } ?? "?"
            return "subject=\(subject), serial=\(serial), not_after=\(notAfter)"
        }
    }
}

/// What `write` prints into a memory BIO, or nil when it fails.
private func bioText(_ write: (OpaquePointer) -> Int32) -> String? {
    guard let bio = BIO_new(BIO_s_mem()) else { return nil }
    defer { BIO_free(bio) }
    guard write(bio) > 0 else { return nil }
    let length = Int(BIO_ctrl_pending(bio))
    var bytes = [UInt8](repeating: 0, count: length)
    var readBytes = 0
    _ = BIO_read_ex(bio, &bytes, length, &readBytes)
    return String(decoding: bytes.prefix(readBytes), as: UTF8.self)
}
