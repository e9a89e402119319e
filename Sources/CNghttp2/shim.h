#ifndef GATEWAY_CNGHTTP2_SHIM_H
#define GATEWAY_CNGHTTP2_SHIM_H

// libnghttp2 from Debian's libnghttp2-dev (1.52 on Debian 12: no nghttp2_ssize APIs).
#include <nghttp2/nghttp2.h>

/// The version string of the libnghttp2 the process runs against (not the one it was built with).
static inline const char *cnghttp2_runtime_version(void) {
    nghttp2_info *info = nghttp2_version(0);
    return info != NULL ? info->version_str : "unknown";
}

#endif
