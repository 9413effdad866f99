// The version of this build (CMake's project version), for --version, the instance row
// and the klingq_build_info metric. Defined in version.cpp, the one file compiled with it,
// so a new version rebuilds one file.
#pragma once

namespace klingq {

const char* version();

}  // namespace klingq
