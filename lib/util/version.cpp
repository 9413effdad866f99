// See version.hpp. KLINGQ_VERSION comes from CMakeLists.txt for this file only.
#include "util/version.hpp"

namespace klingq {

const char* version() { return KLINGQ_VERSION; }

}  // namespace klingq
