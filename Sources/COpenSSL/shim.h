#ifndef COPENSSL_SHIM_H
#define COPENSSL_SHIM_H
/* Umbrella over the system OpenSSL 3 headers. Function-like macros that Swift cannot import get a
 * static inline wrapper here (TOOLCHAIN.md §1, variant B). Each wrapper is one line and does nothing
 * but expand the macro, so the Swift side reads like the OpenSSL documentation. */
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/bio.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/opensslv.h>

/* SSL_CTX / SSL control macros. */
static inline int copenssl_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int v) { return (int)SSL_CTX_set_min_proto_version(ctx, v); }
static inline int copenssl_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int v) { return (int)SSL_CTX_set_max_proto_version(ctx, v); }
static inline long copenssl_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }
static inline long copenssl_SSL_CTX_set_session_cache_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_session_cache_mode(ctx, mode); }
static inline long copenssl_SSL_CTX_add_extra_chain_cert(SSL_CTX *ctx, X509 *x509) { return SSL_CTX_add_extra_chain_cert(ctx, x509); }
static inline int copenssl_SSL_set_tlsext_host_name(SSL *ssl, const char *name) { return (int)SSL_set_tlsext_host_name(ssl, name); }
static inline int copenssl_SSL_get_ex_new_index(void) { return SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL); }

/* Option and flag values that are computed macros (SSL_OP_BIT(n), ORs of flags). */
static inline uint64_t copenssl_SSL_OP_NO_RENEGOTIATION(void) { return SSL_OP_NO_RENEGOTIATION; }
static inline uint64_t copenssl_SSL_OP_NO_COMPRESSION(void) { return SSL_OP_NO_COMPRESSION; }
static inline uint64_t copenssl_SSL_OP_CIPHER_SERVER_PREFERENCE(void) { return SSL_OP_CIPHER_SERVER_PREFERENCE; }
static inline uint64_t copenssl_SSL_OP_IGNORE_UNEXPECTED_EOF(void) { return SSL_OP_IGNORE_UNEXPECTED_EOF; }
static inline uint64_t copenssl_SSL_OP_NO_TICKET(void) { return SSL_OP_NO_TICKET; }
static inline unsigned long copenssl_XN_FLAG_RFC2253(void) { return XN_FLAG_RFC2253; }

/* Subject alternative names (STACK_OF(GENERAL_NAME) accessors are macros over OPENSSL_sk_*). */
static inline GENERAL_NAMES *copenssl_X509_get_subject_alt_names(X509 *x) { return (GENERAL_NAMES *)X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL); }
static inline int copenssl_GENERAL_NAMES_count(GENERAL_NAMES *names) { return sk_GENERAL_NAME_num(names); }
/* The type (GEN_DNS, GEN_URI, ...) of entry i; for DNS and URI names also their IA5String bytes. */
static inline int copenssl_GENERAL_NAMES_get(GENERAL_NAMES *names, int i, const unsigned char **data, int *length) {
    GENERAL_NAME *name = sk_GENERAL_NAME_value(names, i);
    *data = NULL; *length = 0;
    if (name->type == GEN_DNS || name->type == GEN_URI) { *data = ASN1_STRING_get0_data(name->d.ia5); *length = ASN1_STRING_length(name->d.ia5); }
    return name->type;
}
static inline void copenssl_GENERAL_NAMES_free(GENERAL_NAMES *names) { GENERAL_NAMES_free(names); }

/* BIO macros. */
static inline long copenssl_BIO_set_mem_eof_return(BIO *bio, int v) { return BIO_set_mem_eof_return(bio, v); }
static inline void copenssl_BIO_set_retry_read(BIO *bio) { BIO_set_retry_read(bio); }
static inline void copenssl_BIO_set_retry_write(BIO *bio) { BIO_set_retry_write(bio); }
static inline void copenssl_BIO_clear_retry_flags(BIO *bio) { BIO_clear_retry_flags(bio); }

/* Error queue accessors (static inline in OpenSSL 3 headers; wrapped so the import does not depend on that). */
static inline int copenssl_ERR_GET_LIB(unsigned long e) { return ERR_GET_LIB(e); }
static inline int copenssl_ERR_GET_REASON(unsigned long e) { return ERR_GET_REASON(e); }

/* Key generation macros (EVP_EC_gen / EVP_RSA_gen expand to a variadic call Swift cannot make). */
static inline EVP_PKEY *copenssl_EVP_EC_gen_P256(void) { return EVP_EC_gen("P-256"); }
static inline EVP_PKEY *copenssl_EVP_RSA_gen(unsigned int bits) { return EVP_RSA_gen(bits); }
#endif
