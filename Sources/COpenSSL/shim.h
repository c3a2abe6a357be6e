#ifndef COPENSSL_SHIM_H
#define COPENSSL_SHIM_H
/* Umbrella over the system OpenSSL 3 headers. Function-like macros that Swift cannot import get a
 * static inline wrapper here (TOOLCHAIN.md §1, variant B). */
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/bio.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/opensslv.h>
#endif
