// Windows-only behaviour of the LockFileEx back end: the counterparts of the
// POSIX FIFO and symlink tests, wide paths, the overlapped waits and their
// cancellation, and injected failures.
#ifdef _WIN32

#include <fasteners/interprocess_lock.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "test_support.hpp"
#include "windows/windows_lock_file.hpp"

namespace {

using namespace std::chrono_literals;
using fasteners::interprocess_lock;
using fasteners::interprocess_reader_writer_lock;
using fasteners::test::error_of;
using fasteners::test::helper_acquired;
using fasteners::test::helper_busy;
using fasteners::test::read_file;
using fasteners::test::run_helper;
using fasteners::test::temp_dir;
using fasteners::test::write_file;
namespace windows = fasteners::detail::windows;

TEST(WindowsFileLock, NonDiskFileIsRejectedNamingThePath) {
  interprocess_lock device("NUL");
  auto e = error_of([&] { device.lock(); });
  EXPECT_EQ(e.code, std::errc::invalid_argument);
  EXPECT_NE(e.what.find("NUL"), std::string::npos) << e.what;

  const std::wstring pipe_name = L"\\\\.\\pipe\\fasteners-test-" + std::to_wstring(::GetCurrentProcessId());
  const HANDLE server =
      ::CreateNamedPipeW(pipe_name.c_str(), PIPE_ACCESS_DUPLEX, PIPE_TYPE_BYTE, 1, 512, 512, 0, nullptr);
  ASSERT_NE(server, INVALID_HANDLE_VALUE) << ::GetLastError();
  fasteners::interprocess_options options;
  options.create_parent_directories = false;
  const std::filesystem::path pipe_path(pipe_name);
  interprocess_lock pipe(pipe_path, options);
  e = error_of([&] { (void)pipe.try_lock_for(std::chrono::seconds(1)); });
  EXPECT_EQ(e.code, std::errc::invalid_argument);
  EXPECT_NE(e.what.find(pipe_path.string()), std::string::npos) << e.what;
  ::CloseHandle(server);
}

TEST(WindowsFileLock, SymbolicLinkIsRejectedAndItsTargetUntouched) {
  temp_dir dir;
  const auto target = dir / "target";
  write_file(target, "keep me");
  const auto link = dir / "link";
  if (!::CreateSymbolicLinkW(link.c_str(), L"target", SYMBOLIC_LINK_FLAG_ALLOW_UNPRIVILEGED_CREATE)) {
    GTEST_SKIP() << "cannot create a symbolic link here (error " << ::GetLastError()
                 << "; needs developer mode or the privilege)";
  }
  const DWORD attributes = ::GetFileAttributesW(link.c_str());
  if (attributes == INVALID_FILE_ATTRIBUTES || (attributes & FILE_ATTRIBUTE_REPARSE_POINT) == 0) {
    GTEST_SKIP() << "this Windows has no real symbolic links (Wine 8 makes CreateSymbolicLinkW create a plain file)";
  }
  interprocess_reader_writer_lock lock(link);
  auto e = error_of([&] { lock.lock_shared(); });
  EXPECT_EQ(e.code, std::errc::too_many_symbolic_link_levels);
  EXPECT_NE(e.what.find(link.string()), std::string::npos) << e.what;
  EXPECT_EQ(read_file(target), "keep me");
}

TEST(WindowsFileLock, WidePathsWork) {
  temp_dir dir;
  const auto path = dir.path() / L"\u00fcber-\u65e5\u672c" / L"lock-\u00e9\u00e8";
  interprocess_lock a(path), b(path);
  a.lock();
  EXPECT_TRUE(std::filesystem::is_regular_file(path));
  bool got = true;
  std::thread([&] { got = b.try_lock(); }).join();
  EXPECT_FALSE(got);
  a.unlock();
  std::thread([&] {
    got = b.try_lock();
    if (got) b.unlock();
  }).join();
  EXPECT_TRUE(got);
}

// ---- overlapped waits ----

// Stands in for the kernel's asynchronous LockFileEx, which Wine lacks, so
// that the overlapped wait, its cancellation and their races run in CI: a
// request that cannot be granted at once is queued and completed by a worker
// as soon as the real (non-blocking) LockFileEx succeeds. Failures can be
// injected on the way.
class emulated_kernel {
 public:
  emulated_kernel() : real_(windows::syscall_table()) {
    current = this;
    auto& table = windows::syscall_table();
    table.lock_file_ex = &lock_file_ex;
    table.unlock_file_ex = &unlock_file_ex;
    table.cancel_io_ex = &cancel_io_ex;
    table.get_overlapped_result = &get_overlapped_result;
    table.async_lock_waits = true;
    worker_ = std::thread([this] { run(); });
  }
  ~emulated_kernel() {
    stop_ = true;
    worker_.join();
    windows::syscall_table() = real_;
    current = nullptr;
  }
  emulated_kernel(const emulated_kernel&) = delete;
  emulated_kernel& operator=(const emulated_kernel&) = delete;

  // Completes what can be completed now, as the worker does.
  void complete_ready_requests() {
    std::lock_guard<std::mutex> guard(mutex_);
    auto still_pending = std::remove_if(queue_.begin(), queue_.end(), [&](const request& r) {
      DWORD error = complete_with;
      if (error == ERROR_SUCCESS) {
        OVERLAPPED now{};
        if (!real_.lock_file_ex(r.file, r.flags | LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &now)) {
          error = ::GetLastError();
          if (error == ERROR_LOCK_VIOLATION && (r.flags & LOCKFILE_FAIL_IMMEDIATELY) == 0) return false;
        }
      }
      finish(r.overlapped, error);
      return true;
    });
    queue_.erase(still_pending, queue_.end());
  }
  std::size_t queued() {
    std::lock_guard<std::mutex> guard(mutex_);
    return queue_.size();
  }

  std::atomic<int> went_pending{0};
  std::atomic<int> cancelled{0};
  std::atomic<int> fail_next_lock{0};  // synchronous LockFileEx failures
  std::atomic<DWORD> lock_error{ERROR_SUCCESS};
  std::atomic<bool> fail_unlock{false};
  std::atomic<bool> tries_go_pending{false};        // LOCKFILE_FAIL_IMMEDIATELY answers asynchronously
  std::atomic<DWORD> complete_with{ERROR_SUCCESS};  // pending requests fail with this instead
  std::function<void()> on_cancel;                  // runs as CancelIoEx is called

 private:
  struct request {
    HANDLE file;
    DWORD flags;
    OVERLAPPED* overlapped;
  };

  static void finish(OVERLAPPED* overlapped, DWORD error) {
    overlapped->InternalHigh = error;
    overlapped->Internal = 0;
    ::SetEvent(overlapped->hEvent);
  }

  void run() {
    while (!stop_) {
      complete_ready_requests();
      std::this_thread::sleep_for(200us);
    }
  }

  static BOOL WINAPI lock_file_ex(HANDLE file, DWORD flags, DWORD, DWORD low, DWORD high, OVERLAPPED* overlapped) {
    auto& self = *current;
    if (self.fail_next_lock > 0) {
      --self.fail_next_lock;
      ::SetLastError(self.lock_error);
      return FALSE;
    }
    const bool pend_anyway = self.tries_go_pending && (flags & LOCKFILE_FAIL_IMMEDIATELY) != 0;
    if (!pend_anyway) {
      OVERLAPPED now{};
      if (self.real_.lock_file_ex(file, flags | LOCKFILE_FAIL_IMMEDIATELY, 0, low, high, &now)) return TRUE;
      if (::GetLastError() != ERROR_LOCK_VIOLATION || (flags & LOCKFILE_FAIL_IMMEDIATELY) != 0) return FALSE;
    }
    std::lock_guard<std::mutex> guard(self.mutex_);
    ::ResetEvent(overlapped->hEvent);
    overlapped->Internal = STATUS_PENDING;
    self.queue_.push_back(request{file, flags, overlapped});
    ++self.went_pending;
    ::SetLastError(ERROR_IO_PENDING);
    return FALSE;
  }

  static BOOL WINAPI unlock_file_ex(HANDLE file, DWORD reserved, DWORD low, DWORD high, OVERLAPPED* overlapped) {
    auto& self = *current;
    if (self.fail_unlock) {
      ::SetLastError(ERROR_IO_DEVICE);
      return FALSE;
    }
    return self.real_.unlock_file_ex(file, reserved, low, high, overlapped);
  }

  static BOOL WINAPI cancel_io_ex(HANDLE, OVERLAPPED* overlapped) {
    auto& self = *current;
    ++self.cancelled;
    if (self.on_cancel) self.on_cancel();
    std::lock_guard<std::mutex> guard(self.mutex_);
    auto it = std::find_if(self.queue_.begin(), self.queue_.end(),
                           [&](const request& r) { return r.overlapped == overlapped; });
    if (it == self.queue_.end()) {
      ::SetLastError(ERROR_NOT_FOUND);
      return FALSE;
    }
    self.queue_.erase(it);
    finish(overlapped, ERROR_OPERATION_ABORTED);
    return TRUE;
  }

  static BOOL WINAPI get_overlapped_result(HANDLE, OVERLAPPED* overlapped, DWORD* transferred, BOOL wait) {
    if (wait) {
      ::WaitForSingleObject(overlapped->hEvent, INFINITE);
    } else if (overlapped->Internal == STATUS_PENDING) {
      ::SetLastError(ERROR_IO_INCOMPLETE);
      return FALSE;
    }
    *transferred = 0;
    const auto error = static_cast<DWORD>(overlapped->InternalHigh);
    if (error == ERROR_SUCCESS) return TRUE;
    ::SetLastError(error);
    return FALSE;
  }

  static inline emulated_kernel* current = nullptr;
  const windows::syscalls real_;
  std::mutex mutex_;
  std::vector<request> queue_;
  std::atomic<bool> stop_{false};
  std::thread worker_;
};

// Holds byte 0 through a handle of its own, outside the library.
class raw_holder {
 public:
  explicit raw_holder(const std::filesystem::path& path)
      : handle_(::CreateFileW(path.c_str(), GENERIC_READ | GENERIC_WRITE,
                              FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr, OPEN_ALWAYS,
                              FILE_FLAG_OVERLAPPED, nullptr)) {
    OVERLAPPED at_zero{};
    held_ = handle_ != INVALID_HANDLE_VALUE &&
            ::LockFileEx(handle_, LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &at_zero);
  }
  ~raw_holder() {
    release();
    if (handle_ != INVALID_HANDLE_VALUE) ::CloseHandle(handle_);
  }
  raw_holder(const raw_holder&) = delete;
  raw_holder& operator=(const raw_holder&) = delete;
  bool held() const noexcept { return held_; }
  void release() {
    OVERLAPPED at_zero{};
    if (held_) ::UnlockFileEx(handle_, 0, 1, 0, &at_zero);
    held_ = false;
  }

 private:
  HANDLE handle_;
  bool held_ = false;
};

class WindowsOverlappedWaits : public ::testing::Test {
 protected:
  emulated_kernel kernel_;
  temp_dir dir_;
};

TEST_F(WindowsOverlappedWaits, BlockingWaitSleepsUntilTheHolderReleases) {
  const auto path = dir_ / "lock";
  auto holder = fasteners::test::child_process::helper({"hold", path.string(), "exclusive"});
  ASSERT_TRUE(holder.wait_for_line("locked"));
  interprocess_reader_writer_lock rw(path);
  auto waiter = std::async(std::launch::async, [&] {
    rw.lock_shared();
    rw.unlock_shared();
    return true;
  });
  EXPECT_EQ(waiter.wait_for(200ms), std::future_status::timeout);
  EXPECT_EQ(kernel_.went_pending.load(), 1);
  holder.close_stdin();
  ASSERT_EQ(waiter.wait_for(60s), std::future_status::ready);
  EXPECT_TRUE(waiter.get());
  EXPECT_EQ(holder.wait(), 0);
  EXPECT_EQ(kernel_.cancelled.load(), 0);
}

TEST_F(WindowsOverlappedWaits, TimedWaitThatRunsOutCancelsItsRequest) {
  const auto path = dir_ / "lock";
  raw_holder holder(path);
  ASSERT_TRUE(holder.held());
  interprocess_lock lock(path);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(lock.try_lock_for(150ms));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);
  EXPECT_EQ(kernel_.cancelled.load(), 1);
  EXPECT_EQ(kernel_.queued(), 0u);
  EXPECT_FALSE(lock.owns_lock());
  holder.release();
  // Nothing was left behind that could grant us the lock later.
  EXPECT_EQ(run_helper({"try", path.string(), "exclusive"}), helper_acquired);
  EXPECT_TRUE(lock.try_lock_for(1s));
  lock.unlock();
}

TEST_F(WindowsOverlappedWaits, LockGrantedAsTheWaitRunsOutIsKept) {
  const auto path = dir_ / "lock";
  raw_holder holder(path);
  ASSERT_TRUE(holder.held());
  kernel_.on_cancel = [&] {  // the holder lets go just as we give up
    holder.release();
    kernel_.complete_ready_requests();
  };
  interprocess_lock lock(path);
  EXPECT_TRUE(lock.try_lock_for(50ms));
  EXPECT_EQ(kernel_.cancelled.load(), 1);
  EXPECT_TRUE(lock.owns_lock());
  EXPECT_EQ(run_helper({"try", path.string(), "exclusive"}), helper_busy);
  lock.unlock();
  EXPECT_EQ(run_helper({"try", path.string(), "exclusive"}), helper_acquired);
}

TEST_F(WindowsOverlappedWaits, TryAnsweredAsynchronouslyIsStillOneTry) {
  const auto path = dir_ / "lock";
  kernel_.tries_go_pending = true;
  interprocess_lock lock(path);
  {
    raw_holder holder(path);
    ASSERT_TRUE(holder.held());
    EXPECT_FALSE(lock.try_lock());
  }
  EXPECT_TRUE(lock.try_lock());
  EXPECT_EQ(kernel_.went_pending.load(), 2);
  lock.unlock();
}

// ---- injected failures ----

using WindowsInjectedFailures = WindowsOverlappedWaits;

template <class F>
std::system_error system_error_of(F&& f) {
  try {
    f();
  } catch (const std::system_error& e) {
    return e;
  }
  return std::system_error(std::error_code(), "did not throw");
}

TEST_F(WindowsInjectedFailures, OnlyLockViolationMeansBusy) {
  interprocess_lock lock(dir_ / "lock");
  kernel_.lock_error = ERROR_LOCK_VIOLATION;
  kernel_.fail_next_lock = 1;
  EXPECT_FALSE(lock.try_lock());
  for (DWORD error : {ERROR_ACCESS_DENIED, ERROR_SHARING_VIOLATION, ERROR_NOT_LOCKED}) {
    kernel_.lock_error = error;
    kernel_.fail_next_lock = 1;
    const auto e = system_error_of([&] { (void)lock.try_lock(); });
    EXPECT_EQ(e.code(), std::error_code(static_cast<int>(error), std::system_category())) << e.what();
  }
  EXPECT_TRUE(lock.try_lock());
  lock.unlock();
}

TEST_F(WindowsInjectedFailures, LockErrorsNameThePathAndLeaveTheLockUsable) {
  const auto path = dir_ / "lock";
  interprocess_reader_writer_lock rw(path);
  for (int attempt : {0, 1, 2, 3}) {
    kernel_.lock_error = ERROR_IO_DEVICE;
    kernel_.fail_next_lock = 1;
    const auto e = system_error_of([&] {
      switch (attempt) {
        case 0:
          (void)rw.try_lock();
          break;
        case 1:
          rw.lock();
          break;
        case 2:
          rw.lock_shared();
          break;
        default:
          (void)rw.try_lock_shared_for(1s);
          break;
      }
    });
    EXPECT_EQ(e.code(), std::error_code(ERROR_IO_DEVICE, std::system_category())) << attempt << ": " << e.what();
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    EXPECT_FALSE(rw.is_writer());
    EXPECT_FALSE(rw.is_reader());
  }
  rw.lock();
  rw.unlock();
}

TEST_F(WindowsInjectedFailures, WaitEndingInAnErrorThrowsNamingThePath) {
  const auto path = dir_ / "lock";
  raw_holder holder(path);
  ASSERT_TRUE(holder.held());
  kernel_.complete_with = ERROR_IO_DEVICE;
  interprocess_lock lock(path);
  for (bool timed : {false, true}) {
    const auto e = system_error_of([&] {
      if (timed) {
        (void)lock.try_lock_for(30s);
      } else {
        lock.lock();
      }
    });
    EXPECT_EQ(e.code(), std::error_code(ERROR_IO_DEVICE, std::system_category())) << e.what();
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    EXPECT_FALSE(lock.owns_lock());
  }
  EXPECT_EQ(kernel_.queued(), 0u);
}

TEST_F(WindowsInjectedFailures, UnlockErrorIsAnErrorNamingThePath) {
  const auto path = dir_ / "lock";
  {
    interprocess_lock lock(path);
    lock.lock();
    kernel_.fail_unlock = true;
    const auto e = system_error_of([&] { lock.unlock(); });
    kernel_.fail_unlock = false;
    EXPECT_EQ(e.code(), std::error_code(ERROR_IO_DEVICE, std::system_category())) << e.what();
    EXPECT_NE(std::string(e.what()).find("unlock"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
  // Closing the handle released what the failed unlock left behind.
  EXPECT_EQ(run_helper({"try", path.string(), "exclusive"}), helper_acquired);
}

}  // namespace

#endif  // _WIN32
