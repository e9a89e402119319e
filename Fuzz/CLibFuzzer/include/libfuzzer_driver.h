#ifndef GATEWAY_LIBFUZZER_DRIVER_H
#define GATEWAY_LIBFUZZER_DRIVER_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver (in the toolchain's libclang_rt.fuzzer), declared so Swift can call it
/// with C's calling convention: SwiftPM gives an executable its own `main`, so libFuzzer's
/// cannot be used and the fuzz target starts the driver itself.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
