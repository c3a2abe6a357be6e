#include "CRelayTLS.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>

struct crelay_tls_context {
    SSL_CTX *ctx;
};

struct crelay_tls {
    SSL *ssl;
    const uint8_t *in;
    size_t in_left;
    uint8_t *out;
    size_t out_capacity;
    size_t out_used;
};

static BIO_METHOD *window_method;

/// BIO read: from the input window; empty means "retry" (the loop reads the socket and calls again).
static int window_read(BIO *bio, char *data, int length) {
    crelay_tls *tls = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (tls->in_left == 0) {
        BIO_set_retry_read(bio);
        return -1;
    }
    size_t count = (size_t)length < tls->in_left ? (size_t)length : tls->in_left;
    memcpy(data, tls->in, count);
    tls->in += count;
    tls->in_left -= count;
    return (int)count;
}

/// BIO write: into the output window. A full window is a failure, not a retry: the caller sizes it with
/// crelay_tls_output_bound, so OpenSSL never holds half-written records between calls.
static int window_write(BIO *bio, const char *data, int length) {
    crelay_tls *tls = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (tls->out == NULL || tls->out_capacity - tls->out_used < (size_t)length) return -1;
    memcpy(tls->out + tls->out_used, data, (size_t)length);
    tls->out_used += (size_t)length;
    return length;
}

static long window_control(BIO *bio, int command, long number, void *pointer) {
    (void)bio, (void)number, (void)pointer;
    switch (command) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_PENDING: {
        crelay_tls *tls = BIO_get_data(bio);
        return (long)tls->in_left;
    }
    default: return 0;
    }
}

static int window_create(BIO *bio) {
    BIO_set_init(bio, 1);
    return 1;
}

static BIO_METHOD *method(void) {
    // Created once; the first call comes from one loop's thread at start-up, before any other (contexts
    // are made before the loops start).
    if (window_method == NULL) {
        BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "crelay window");
        BIO_meth_set_read(m, window_read);
        BIO_meth_set_write(m, window_write);
        BIO_meth_set_ctrl(m, window_control);
        BIO_meth_set_create(m, window_create);
        window_method = m;
    }
    return window_method;
}

static void common_settings(SSL_CTX *ctx) {
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN | SSL_MODE_RELEASE_BUFFERS);
}

static void reason(char *error, size_t size, const char *what) {
    if (error == NULL || size == 0) return;
    unsigned long code = ERR_get_error();
    char detail[200] = "";
    if (code != 0) ERR_error_string_n(code, detail, sizeof detail);
    snprintf(error, size, "%s%s%s", what, code ? ": " : "", detail);
    ERR_clear_error();
}

crelay_tls_context *crelay_tls_server_context(
    const char *certificate_pem, const char *key_pem, const char *cipher_list, const char *cipher_suites, char *error, size_t error_size) {
    (void)method();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) return reason(error, error_size, "SSL_CTX_new"), NULL;
    common_settings(ctx);
    if (SSL_CTX_set_cipher_list(ctx, cipher_list) != 1 || SSL_CTX_set_ciphersuites(ctx, cipher_suites) != 1) {
        return reason(error, error_size, "ciphers"), SSL_CTX_free(ctx), NULL;
    }
    BIO *bio = BIO_new_mem_buf(certificate_pem, -1);
    X509 *leaf = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL);
    int ok = leaf != NULL && SSL_CTX_use_certificate(ctx, leaf) == 1;
    X509_free(leaf);
    X509 *extra;
    while (ok && (extra = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (SSL_CTX_add_extra_chain_cert(ctx, extra) != 1) X509_free(extra), ok = 0;
    }
    ERR_clear_error();  // the end of the chain reads as an error
    BIO_free(bio);
    if (!ok) return reason(error, error_size, "certificate"), SSL_CTX_free(ctx), NULL;
    bio = BIO_new_mem_buf(key_pem, -1);
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    ok = key != NULL && SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    EVP_PKEY_free(key);
    if (!ok) return reason(error, error_size, "private key"), SSL_CTX_free(ctx), NULL;
    crelay_tls_context *context = malloc(sizeof *context);
    context->ctx = ctx;
    return context;
}

crelay_tls_context *crelay_tls_client_context(void) {
    (void)method();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) return NULL;
    common_settings(ctx);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    crelay_tls_context *context = malloc(sizeof *context);
    context->ctx = ctx;
    return context;
}

void crelay_tls_context_free(crelay_tls_context *context) {
    if (context == NULL) return;
    SSL_CTX_free(context->ctx);
    free(context);
}

crelay_tls *crelay_tls_new(crelay_tls_context *context) {
    SSL *ssl = SSL_new(context->ctx);
    if (ssl == NULL) return NULL;
    BIO *bio = BIO_new(method());
    if (bio == NULL) return SSL_free(ssl), NULL;
    crelay_tls *tls = calloc(1, sizeof *tls);
    tls->ssl = ssl;
    BIO_set_data(bio, tls);
    SSL_set_bio(ssl, bio, bio);  // one reference, owned by the SSL
    if (SSL_is_server(ssl)) {
        SSL_set_accept_state(ssl);
    } else {
        SSL_set_connect_state(ssl);
    }
    return tls;
}

void crelay_tls_free(crelay_tls *tls) {
    if (tls == NULL) return;
    SSL_free(tls->ssl);
    free(tls);
}

void crelay_tls_set_input(crelay_tls *tls, const uint8_t *bytes, size_t count) {
    tls->in = bytes;
    tls->in_left = count;
}

size_t crelay_tls_input_left(const crelay_tls *tls) { return tls->in_left; }

void crelay_tls_set_output(crelay_tls *tls, uint8_t *bytes, size_t capacity) {
    tls->out = bytes;
    tls->out_capacity = capacity;
    tls->out_used = 0;
}

size_t crelay_tls_output_used(const crelay_tls *tls) { return tls->out_used; }

/// OpenSSL's result as one of ours; the thread's error queue is left empty for the next connection.
static int classify(crelay_tls *tls, int result) {
    int error = SSL_get_error(tls->ssl, result);
    switch (error) {
    case SSL_ERROR_WANT_READ: return CRELAY_TLS_WANT_READ;
    case SSL_ERROR_ZERO_RETURN: return CRELAY_TLS_CLOSED;
    default: ERR_clear_error(); return CRELAY_TLS_FAILED;
    }
}

int crelay_tls_handshake(crelay_tls *tls) {
    int result = SSL_do_handshake(tls->ssl);
    return result == 1 ? 1 : classify(tls, result);
}

int crelay_tls_read(crelay_tls *tls, uint8_t *plaintext, size_t capacity) {
    size_t count = 0;
    int result = SSL_read_ex(tls->ssl, plaintext, capacity, &count);
    return result == 1 ? (int)count : classify(tls, 0);
}

int crelay_tls_write(crelay_tls *tls, const uint8_t *plaintext, size_t count) {
    if (count == 0) return 0;
    size_t written = 0;
    int result = SSL_write_ex(tls->ssl, plaintext, count, &written);
    return result == 1 ? (int)written : classify(tls, 0);
}

int crelay_tls_shutdown(crelay_tls *tls) {
    int result = SSL_shutdown(tls->ssl);
    return result >= 0 ? result : classify(tls, result);
}

const char *crelay_tls_cipher_name(const crelay_tls *tls) { return SSL_get_cipher_name(tls->ssl); }

size_t crelay_tls_output_bound(size_t count) {
    // Per record of up to 16,384 plaintext bytes: a 5-byte header, and at most 8 (explicit nonce) + 16
    // (tag) + 1 (TLS 1.3 inner type) + 256 (padding, unused by OpenSSL without a callback) bytes.
    return count + (count / 16384 + 1) * (5 + 8 + 16 + 1 + 256);
}
