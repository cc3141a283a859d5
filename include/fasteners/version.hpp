#pragma once

#define FASTENERS_VERSION_MAJOR 0
#define FASTENERS_VERSION_MINOR 1
#define FASTENERS_VERSION_PATCH 0

namespace fasteners {
inline constexpr const char* version_string = "0.1.0";
}  // namespace fasteners
