// Lock files as back ends: what the lock objects (interprocess_lock.cpp) ask
// of a platform's file locking. One implementation each in
// posix/file_backend_ofd.cpp, posix/file_backend_classic.cpp and
// windows/file_backend.cpp.
#pragma once

#include "lock_backend.hpp"

#include <fasteners/interprocess_options.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace fasteners::detail {

// Identifies a file within this machine (device and inode, or on Windows the
// volume serial number and file index).
struct file_id {
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
};

// The record key of a file: one record per file per process.
std::string record_key(const file_id& id);

// Opens the lock file (DESIGN.md: created if missing, parents too, never
// truncated, regular files only) and returns the back end that locks it, with
// its record key. Throws std::system_error naming the path.
std::unique_ptr<lock_backend> open_file_backend(const std::filesystem::path& path, const interprocess_options& options,
                                                std::string& key);
// The key of an existing regular file, without opening it; nullopt where that
// cannot be known without opening (no such file, not a regular file, Windows).
std::optional<std::string> peek_file_key(const std::filesystem::path& path) noexcept;

// "ofd", "classic-fcntl" or "LockFileEx", for diagnostics and benchmarks.
const char* file_backend_name() noexcept;

}  // namespace fasteners::detail
