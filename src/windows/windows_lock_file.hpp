// The Windows calls the LockFileEx back end makes, through one small table so
// that tests can inject failures and stand in for the kernel where Wine falls
// short (it has no asynchronous lock waits).
#pragma once

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>

namespace fasteners::detail::windows {

struct syscalls {
  decltype(&::LockFileEx) lock_file_ex;
  decltype(&::UnlockFileEx) unlock_file_ex;
  decltype(&::CancelIoEx) cancel_io_ex;
  decltype(&::GetOverlappedResult) get_overlapped_result;
  // False where an overlapped LockFileEx never completes (Wine): blocking and
  // timed waits then poll instead.
  bool async_lock_waits;
};
syscalls& syscall_table() noexcept;

}  // namespace fasteners::detail::windows
