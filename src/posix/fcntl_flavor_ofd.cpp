// Open-file-description locks (Linux 3.15 and later).
#include "posix/fcntl_flavor.hpp"

namespace fasteners::detail::posix {

const fcntl_flavor& flavor() noexcept {
  static const fcntl_flavor ofd{F_OFD_SETLK, F_OFD_SETLKW, false, "ofd"};
  return ofd;
}

}  // namespace fasteners::detail::posix
