// Nothing to compile: the target exists for its header (include/libfuzzer_driver.h).
#include "libfuzzer_driver.h"
