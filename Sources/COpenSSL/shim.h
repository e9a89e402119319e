#ifndef GATEWAY_COPENSSL_SHIM_H
#define GATEWAY_COPENSSL_SHIM_H

// OpenSSL libssl/libcrypto from Debian's libssl-dev (3.0 on Debian 12).
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>

/// The version string of the libssl the process runs against (OpenSSL_version is a function,
/// OPENSSL_VERSION_TEXT would be the build-time header).
static inline const char *copenssl_runtime_version(void) {
    return OpenSSL_version(OPENSSL_VERSION);
}

#endif
