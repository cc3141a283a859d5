// Classic fcntl record locks (POSIX; macOS and the BSDs have nothing better).
#include "posix/fcntl_flavor.hpp"

namespace fasteners::detail::posix {

const fcntl_flavor& flavor() noexcept {
  static const fcntl_flavor classic{F_SETLK, F_SETLKW, true, "classic-fcntl"};
  return classic;
}

}  // namespace fasteners::detail::posix
