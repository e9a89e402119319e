#ifndef GATEWAY_COPENSSL_SHIM_H
#define GATEWAY_COPENSSL_SHIM_H

// OpenSSL libssl/libcrypto from Debian's libssl-dev (3.0 on Debian 12).
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <openssl/x509v3.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/hmac.h>

// Swift does not import function-like macros, nor macros whose value is built by another
// function-like macro (SSL_OP_BIT). Everything below is a `static inline` wrapper so that this
// header defines no symbol of its own: a system-library target has no .c file to hold one.

/// The version string of the libssl the process runs against (OpenSSL_version is a function,
/// OPENSSL_VERSION_TEXT would be the build-time header).
static inline const char *copenssl_runtime_version(void) {
    return OpenSSL_version(OPENSSL_VERSION);
}

// MARK: SSL_CTX configuration (macros over SSL_CTX_ctrl)

static inline int copenssl_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}

static inline int copenssl_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_max_proto_version(ctx, version);
}

static inline long copenssl_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_mode(ctx, mode);
}

/// SSL_OP_NO_RENEGOTIATION is `SSL_OP_BIT(30)`, which Swift cannot evaluate.
static inline uint64_t copenssl_SSL_OP_NO_RENEGOTIATION(void) {
    return SSL_OP_NO_RENEGOTIATION;
}

/// SSL_OP_NO_COMPRESSION is `SSL_OP_BIT(17)`, which Swift cannot evaluate.
static inline uint64_t copenssl_SSL_OP_NO_COMPRESSION(void) {
    return SSL_OP_NO_COMPRESSION;
}

/// The servername (SNI) callback, typed: the macro casts it to `void (*)(void)`.
typedef int (*copenssl_servername_callback)(SSL *ssl, int *alert, void *arg);

static inline long copenssl_SSL_CTX_set_tlsext_servername_callback(
    SSL_CTX *ctx, copenssl_servername_callback callback
) {
    return SSL_CTX_set_tlsext_servername_callback(ctx, callback);
}

static inline long copenssl_SSL_CTX_set_tlsext_servername_arg(SSL_CTX *ctx, void *arg) {
    return SSL_CTX_set_tlsext_servername_arg(ctx, arg);
}

// MARK: SSL (client side, used by tests)

static inline long copenssl_SSL_set_tlsext_host_name(SSL *ssl, const char *name) {
    return SSL_set_tlsext_host_name(ssl, name);
}

// MARK: Certificate names (the stack accessors are macros)

/// The subjectAltName extension of `cert`, or NULL; free with GENERAL_NAMES_free.
static inline GENERAL_NAMES *copenssl_X509_subject_alt_names(const X509 *cert) {
    return (GENERAL_NAMES *)X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
}

static inline int copenssl_GENERAL_NAMES_count(const GENERAL_NAMES *names) {
    return sk_GENERAL_NAME_num(names);
}

/// The `index`th name when it is a DNS name, else NULL.
static inline const ASN1_STRING *copenssl_GENERAL_NAMES_dns_name(const GENERAL_NAMES *names, int index) {
    const GENERAL_NAME *name = sk_GENERAL_NAME_value(names, index);
    if (name == NULL || name->type != GEN_DNS) {
        return NULL;
    }
    return name->d.dNSName;
}

#endif
