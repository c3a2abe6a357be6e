// A TLS engine for the relay core's loops (issue #15 part 2, core22): one OpenSSL `SSL*` over a BIO that
// reads from and writes to caller-owned memory windows (the loop's pool buffers), so no socket and no
// OpenSSL-side byte queue is involved: ciphertext read from the socket is handed to OpenSSL where it lies,
// and records are written straight into the buffer that goes to the socket. TLSShim's engine
// (TLSConnection over ByteBufferBIO) is internal to TLSShim and driven by its NIO handler; this is the
// smallest non-NIO adapter over the same system OpenSSL (see docs/DESIGN-NOTES.md, "Deviation: core22").
#ifndef CRELAYTLS_H
#define CRELAYTLS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crelay_tls_context crelay_tls_context;
typedef struct crelay_tls crelay_tls;

/// A server context from a PEM certificate chain and private key (in memory), with TLSShim's defaults:
/// TLS 1.2–1.3, the given cipher list (TLS 1.2) and suites (TLS 1.3) in server preference, no
/// renegotiation, no compression, SSL_MODE_NO_AUTO_CHAIN, SSL_MODE_RELEASE_BUFFERS, two TLS 1.3 session
/// tickets. NULL on failure (`error` gets OpenSSL's reason).
crelay_tls_context *crelay_tls_server_context(
    const char *certificate_pem, const char *key_pem, const char *cipher_list, const char *cipher_suites, char *error, size_t error_size);
/// A client context that verifies nothing (tests only).
crelay_tls_context *crelay_tls_client_context(void);
void crelay_tls_context_free(crelay_tls_context *context);

/// A connection: accept state for a server context, connect state for a client one.
crelay_tls *crelay_tls_new(crelay_tls_context *context);
void crelay_tls_free(crelay_tls *tls);

/// The ciphertext OpenSSL reads next (`count` bytes at `bytes`, not copied; valid until replaced).
void crelay_tls_set_input(crelay_tls *tls, const uint8_t *bytes, size_t count);
/// Ciphertext bytes of the input window not consumed yet.
size_t crelay_tls_input_left(const crelay_tls *tls);
/// Where OpenSSL writes records (`capacity` bytes at `bytes`); `crelay_tls_output_used` says how many.
void crelay_tls_set_output(crelay_tls *tls, uint8_t *bytes, size_t capacity);
size_t crelay_tls_output_used(const crelay_tls *tls);

/// Results of the calls below besides a byte count.
enum {
    CRELAY_TLS_WANT_READ = -1,   // more ciphertext is needed
    CRELAY_TLS_CLOSED = -2,      // the peer's close_notify
    CRELAY_TLS_FAILED = -3,      // an alert, a protocol error, or the output window was too small
};

/// Advances the handshake: 1 done, CRELAY_TLS_WANT_READ, or CRELAY_TLS_FAILED.
int crelay_tls_handshake(crelay_tls *tls);
/// Decrypts into `plaintext`: the bytes written (> 0), CRELAY_TLS_WANT_READ, _CLOSED or _FAILED.
int crelay_tls_read(crelay_tls *tls, uint8_t *plaintext, size_t capacity);
/// Encrypts all of `plaintext` into the output window: `count`, or CRELAY_TLS_FAILED.
int crelay_tls_write(crelay_tls *tls, const uint8_t *plaintext, size_t count);
/// Sends a close_notify into the output window: 0 sent, 1 both sent and received, or an error above.
int crelay_tls_shutdown(crelay_tls *tls);
/// The negotiated cipher's name (tests).
const char *crelay_tls_cipher_name(const crelay_tls *tls);
/// Output bytes that `count` plaintext bytes can take at most (records of 16 KiB, TLS 1.2 or 1.3 AEAD).
size_t crelay_tls_output_bound(size_t count);

#ifdef __cplusplus
}
#endif

#endif
