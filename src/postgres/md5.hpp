// MD5 (RFC 1321), only to turn lock names into advisory-lock keys the way
// other clients do (tooz: md5(name)); not for anything that needs a secure
// hash. Written here so that the component needs no crypto library, and so
// that the key is computed in the client (server-side md5() is off under FIPS).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace fasteners::detail {

std::array<std::uint8_t, 16> md5(std::string_view bytes) noexcept;

}  // namespace fasteners::detail
