// What every back end's opening code does with a lock file's path before and
// around opening it: refuse what cannot name a lock file, and create missing
// parent directories only as part of an attempt that succeeds.
//
// Shared by posix/file_handle.cpp and windows/; nothing platform-specific here:
// the directory calls are passed in, so that the POSIX back end can route them
// through its system-call table.
#pragma once

#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace fasteners::detail {

// The path for a message: as path::string() shows it, with a NUL shown as
// "\0" and other control characters as "\xNN", so that a message is never cut
// short or garbled by the name it reports.
std::string printable_path(const std::filesystem::path& path);

// "fasteners: <what> '<printable path>'", the form of every error message here.
std::string describe(const std::string& what, const std::filesystem::path& path);

// Throws std::system_error naming the path, before anything is opened or
// created, when the path cannot name a lock file:
//   * empty: no_such_file_or_directory;
//   * an embedded NUL anywhere (the OS would silently cut the name there):
//     invalid_argument;
//   * it names a directory by its spelling: it ends in a separator ("dir/"),
//     or its last component is "." or "..": is_a_directory (what open(2) says
//     of "dir/" with O_CREAT, said before a parent is created for it).
void check_lock_file_path(const std::filesystem::path& path);

// How a back end creates and removes one directory.
struct directory_calls {
  // Creates `dir` (mode 0777 less the umask on POSIX). Returns {} when it made
  // it; std::errc::file_exists when something is already there (made by
  // anyone, maybe not a directory: opening then fails on its own);
  // std::errc::no_such_file_or_directory when its parent is missing; any other
  // error to give up.
  std::error_code (*make)(const std::filesystem::path& dir);
  // Removes `dir` if it is an empty directory; otherwise leaves everything
  // alone. Errors are ignored.
  void (*remove_if_empty)(const std::filesystem::path& dir) noexcept;
};

// Portable directory calls through std::filesystem, for a back end without a
// system-call table of its own (Windows).
const directory_calls& filesystem_directory_calls() noexcept;

// The directories one attempt to open a lock file has created. Unless the
// attempt succeeds (keep()), the destructor removes them, deepest first, each
// only if it is still empty: a failed attempt leaves nothing behind, and never
// takes away a directory that someone else made or put something in.
class created_directories {
 public:
  explicit created_directories(const directory_calls& calls) noexcept : calls_(calls) {}
  ~created_directories();
  created_directories(const created_directories&) = delete;
  created_directories& operator=(const created_directories&) = delete;

  // Creates `dir` and whatever ancestors of it are missing. Returns the error
  // that stopped it, or {} when `dir` exists now (by us or by anyone).
  std::error_code create(const std::filesystem::path& dir);
  // Whether create() made anything, so that a retry is worth it.
  bool made_any() const noexcept { return !made_.empty(); }
  // The attempt succeeded: the directories stay.
  void keep() noexcept { made_.clear(); }

 private:
  std::error_code make_one(const std::filesystem::path& dir);
  const directory_calls& calls_;
  std::vector<std::filesystem::path> made_;  // in the order made: shallowest first
};

}  // namespace fasteners::detail
