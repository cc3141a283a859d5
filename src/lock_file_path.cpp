// Lock-file paths: what is refused up front, and parents created only for an
// attempt that succeeds.
#include "lock_file_path.hpp"

#include <cstdio>

namespace fasteners::detail {

namespace {

[[noreturn]] void refuse(std::errc code, const std::string& what, const std::filesystem::path& path) {
  throw std::system_error(std::make_error_code(code), describe(what, path));
}

std::error_code filesystem_make(const std::filesystem::path& dir) {
  std::error_code ec;
  if (std::filesystem::create_directory(dir, ec)) return {};
  if (ec) return ec;
  return std::make_error_code(std::errc::file_exists);  // a directory was there already
}

void filesystem_remove_if_empty(const std::filesystem::path& dir) noexcept {
  std::error_code ec;
  // remove() of a directory is rmdir(), which leaves a non-empty one alone;
  // the type check keeps it from ever deleting a file.
  if (std::filesystem::is_directory(std::filesystem::symlink_status(dir, ec))) std::filesystem::remove(dir, ec);
}

}  // namespace

std::string printable_path(const std::filesystem::path& path) {
  const std::string raw = path.string();
  std::string shown;
  shown.reserve(raw.size());
  for (const char c : raw) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte == 0) {
      shown += "\\0";
    } else if (byte < 0x20 || byte == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", static_cast<unsigned>(byte));
      shown += escaped;
    } else {
      shown += c;
    }
  }
  return shown;
}

std::string describe(const std::string& what, const std::filesystem::path& path) {
  return "fasteners: " + what + " '" + printable_path(path) + "'";
}

void check_lock_file_path(const std::filesystem::path& path) {
  if (path.empty()) refuse(std::errc::no_such_file_or_directory, "empty lock file path", path);
  if (path.native().find(std::filesystem::path::value_type{}) != std::filesystem::path::string_type::npos) {
    refuse(std::errc::invalid_argument, "lock file path contains a NUL character", path);
  }
  const auto name = path.filename();
  if (name.empty() || name == "." || name == "..") {
    refuse(std::errc::is_a_directory, "lock file path names a directory", path);
  }
}

const directory_calls& filesystem_directory_calls() noexcept {
  static const directory_calls calls{&filesystem_make, &filesystem_remove_if_empty};
  return calls;
}

created_directories::~created_directories() {
  for (auto it = made_.rbegin(); it != made_.rend(); ++it) calls_.remove_if_empty(*it);
}

std::error_code created_directories::make_one(const std::filesystem::path& dir) {
  const std::error_code ec = calls_.make(dir);
  if (!ec) made_.push_back(dir);
  return ec;
}

std::error_code created_directories::create(const std::filesystem::path& dir) {
  // Up from `dir` to the first ancestor that exists or can be made, then down
  // again: in the common case of one missing level, one call.
  std::vector<std::filesystem::path> missing;  // deepest first
  std::filesystem::path at = dir;
  for (;;) {
    const std::error_code ec = make_one(at);
    if (!ec || ec == std::errc::file_exists) break;
    if (ec != std::errc::no_such_file_or_directory) return ec;
    std::filesystem::path up = at.parent_path();
    if (up.empty() || up == at) return ec;
    missing.push_back(std::move(at));
    at = std::move(up);
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    const std::error_code ec = make_one(*it);
    if (ec && ec != std::errc::file_exists) return ec;
  }
  return {};
}

}  // namespace fasteners::detail
