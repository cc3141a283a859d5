// How a lock file is opened: the options of interprocess_lock and
// interprocess_reader_writer_lock.
#pragma once

#include <filesystem>

namespace fasteners {

// The defaults suit almost everyone.
struct interprocess_options {
  // Create missing parent directories of the lock file on first use.
  bool create_parent_directories = true;
  // Permissions of a newly created lock file, before the umask is applied.
  std::filesystem::perms permissions = std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                                       std::filesystem::perms::group_read | std::filesystem::perms::group_write |
                                       std::filesystem::perms::others_read | std::filesystem::perms::others_write;
};

}  // namespace fasteners
