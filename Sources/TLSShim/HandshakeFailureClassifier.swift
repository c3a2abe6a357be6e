internal import COpenSSL

/// Turns OpenSSL's error queue (and the certificate verification result) into a classified
/// ``TLSError``. Pure over its inputs, so every class is unit-tested without a handshake; the
/// real-peer tests then check that real failures land in the same classes.
enum HandshakeFailureClassifier {
    /// Classifies a failed `SSL_do_handshake`.
    ///
    /// Order matters: a received alert is what the peer said and wins; then certificate verification
    /// (OpenSSL reports every verification failure as "certificate verify failed", so the verify result
    /// says which); then version and cipher negotiation; anything else keeps OpenSSL's text.
    ///
    /// On the server side (`isServer`) certificate failures are the *client's* certificate (mTLS): a
    /// missing one is ``TLSError/Code/clientCertificateRequired``, a failed verification one of the
    /// `clientCertificate…` codes, so the gateway's 1015 class says which end was at fault.
    static func classify(errors: [TLSError.OpenSSLError], verifyResult: Int, isServer: Bool = false) -> TLSError {
        let sslReasons = errors.filter { copenssl_ERR_GET_LIB(UInt($0.code)) == ERR_LIB_SSL }
        for entry in sslReasons {
            let reason = copenssl_ERR_GET_REASON(UInt(entry.code))
            if reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256 {
                let value = reason - SSL_AD_REASON_OFFSET
                let name = String(cString: SSL_alert_desc_string_long(value))
                return TLSError(
                    code: .alertReceived,
                    reason: entry.reason,
                    alert: TLSAlert(rawValue: UInt8(value), name: name),
                    openSSLErrors: errors
                )
            }
        }
        let reasons = Set(sslReasons.map { copenssl_ERR_GET_REASON(UInt($0.code)) })
        if isServer && reasons.contains(SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
            return TLSError(code: .clientCertificateRequired, reason: "the client sent no certificate", openSSLErrors: errors)
        }
        if reasons.contains(SSL_R_CERTIFICATE_VERIFY_FAILED) && verifyResult != Int(X509_V_OK) {
            let text = String(cString: X509_verify_cert_error_string(verifyResult))
            let code = isServer ? self.clientVerificationCode(verifyResult) : self.verificationCode(verifyResult)
            return TLSError(code: code, reason: isServer ? "client certificate: \(text)" : text, openSSLErrors: errors)
        }
        let first = errors.first?.reason ?? "handshake failed"
        let protocolVersionReasons: Set<Int32> = [
            SSL_R_UNSUPPORTED_PROTOCOL, SSL_R_WRONG_VERSION_NUMBER, SSL_R_VERSION_TOO_LOW,
            SSL_R_VERSION_TOO_HIGH, SSL_R_NO_PROTOCOLS_AVAILABLE, SSL_R_UNKNOWN_PROTOCOL,
        ]
        if let match = sslReasons.first(where: { protocolVersionReasons.contains(copenssl_ERR_GET_REASON(UInt($0.code))) }) {
            return TLSError(code: .protocolVersion, reason: match.reason, openSSLErrors: errors)
        }
        if let match = sslReasons.first(where: {
            let reason = copenssl_ERR_GET_REASON(UInt($0.code))
            return reason == SSL_R_NO_SHARED_CIPHER || reason == SSL_R_NO_CIPHERS_AVAILABLE
        }) {
            return TLSError(code: .noSharedCipher, reason: match.reason, openSSLErrors: errors)
        }
        if let match = sslReasons.first(where: { copenssl_ERR_GET_REASON(UInt($0.code)) == SSL_R_NO_APPLICATION_PROTOCOL }) {
            return TLSError(code: .noApplicationProtocol, reason: match.reason, openSSLErrors: errors)
        }
        if let match = sslReasons.first(where: {
            copenssl_ERR_GET_REASON(UInt($0.code)) == SSL_R_UNEXPECTED_EOF_WHILE_READING
        }) {
            return TLSError(code: .eofDuringHandshake, reason: match.reason, openSSLErrors: errors)
        }
        return TLSError(code: .handshakeFailed, reason: first, openSSLErrors: errors)
    }

    /// Maps an `X509_V_ERR_*` verification result to a code.
    static func verificationCode(_ verifyResult: Int) -> TLSError.Code {
        switch Int32(truncatingIfNeeded: verifyResult) {
        case X509_V_ERR_CERT_HAS_EXPIRED, X509_V_ERR_CRL_HAS_EXPIRED:
            .certificateExpired
        case X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CRL_NOT_YET_VALID:
            .certificateNotYetValid
        case X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH, X509_V_ERR_EMAIL_MISMATCH:
            .hostnameMismatch
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN,
            X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
            X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, X509_V_ERR_CERT_UNTRUSTED, X509_V_ERR_CERT_REJECTED:
            .certificateNotTrusted
        default:
            .certificateInvalid
        }
    }

    /// Maps an `X509_V_ERR_*` result of verifying a *client* certificate to a code.
    static func clientVerificationCode(_ verifyResult: Int) -> TLSError.Code {
        switch self.verificationCode(verifyResult) {
        case .certificateNotTrusted: .clientCertificateUntrusted
        case .certificateExpired, .certificateNotYetValid: .clientCertificateExpired
        default: .clientCertificateInvalid
        }
    }

    /// Classifies a failure on an established connection (`SSL_read` / `SSL_write`).
    static func classifyEstablished(errors: [TLSError.OpenSSLError]) -> TLSError {
        var error = TLSError(
            code: .connectionFailed,
            reason: errors.first?.reason ?? "TLS connection failed",
            openSSLErrors: errors
        )
        for entry in errors where copenssl_ERR_GET_LIB(UInt(entry.code)) == ERR_LIB_SSL {
            let reason = copenssl_ERR_GET_REASON(UInt(entry.code))
            if reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256 {
                let value = reason - SSL_AD_REASON_OFFSET
                error.alert = TLSAlert(rawValue: UInt8(value), name: String(cString: SSL_alert_desc_string_long(value)))
            }
        }
        return error
    }
}
