// A Windows HANDLE closed at scope exit: the one RAII handle of the library
// and of fasten.
#pragma once

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>

#include <utility>

namespace fasteners::detail::windows {

class owned_handle {
 public:
  explicit owned_handle(HANDLE h) noexcept : h_(h) {}
  ~owned_handle() { close(); }
  owned_handle(const owned_handle&) = delete;
  owned_handle& operator=(const owned_handle&) = delete;
  HANDLE get() const noexcept { return h_; }
  HANDLE release() noexcept { return std::exchange(h_, nullptr); }
  void reset(HANDLE h) noexcept {
    close();
    h_ = h;
  }

 private:
  void close() noexcept {
    if (h_ != nullptr && h_ != INVALID_HANDLE_VALUE) ::CloseHandle(h_);
  }
  HANDLE h_;
};

}  // namespace fasteners::detail::windows
