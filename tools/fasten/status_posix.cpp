// A lock file's state on POSIX, found without taking the lock.
//
// fcntl(F_OFD_GETLK) (F_GETLK where there are no open-file-description locks)
// asks "would this lock be granted?" and, if not, describes one conflicting
// lock: a write probe tells free from held, a read probe tells shared from
// exclusive. It sees classic fcntl/lockf locks and OFD locks alike.
//
// On Linux the holders are found as lslocks(8) finds them. /proc/locks names
// the owner of a classic lock, but shows pid -1 for an OFD lock, which belongs
// to an open file description rather than a process; so we also read
// /proc/PID/fdinfo/FD, whose "lock:" lines list the locks held through that
// descriptor. Processes we may not inspect stay anonymous.
#include "lock_status.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <system_error>

#if defined(__linux__)
#include <dirent.h>
#include <sys/sysmacros.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#endif

namespace fasten {

namespace {

struct probe_answer {
  short type = F_UNLCK;  // F_UNLCK: the probed lock would be granted
  long pid = 0;          // the conflicting lock's owner, -1 for an OFD lock
};

probe_answer probe(int fd, short type, const std::filesystem::path& path) {
  struct flock request {};
  request.l_type = type;
  request.l_whence = SEEK_SET;
  request.l_start = 0;
  request.l_len = 0;
#if defined(F_OFD_GETLK)
  const int command = F_OFD_GETLK;
#else
  const int command = F_GETLK;  // fasten holds no lock of its own to hide others
#endif
  while (::fcntl(fd, command, &request) != 0) {
    if (errno != EINTR) throw std::system_error(errno, std::system_category(), path.string());
  }
  return {request.l_type, static_cast<long>(request.l_pid)};
}

void add_holder(std::vector<lock_holder>& list, long pid, bool exclusive) {
  for (auto& holder : list) {
    if (holder.pid == pid) {
      holder.exclusive = holder.exclusive || exclusive;
      return;
    }
  }
  list.push_back({pid, std::string(), exclusive});
}

#if defined(__linux__)
// One lock as the kernel prints it in /proc/locks and in fdinfo "lock:" lines:
//   "1: POSIX  ADVISORY  WRITE 9735 fe:00:10952917 0 EOF"
// Waiting requests ("1: -> POSIX ...") are not locks and are skipped.
struct kernel_lock {
  std::string kind;  // POSIX, OFDLCK, FLOCK, LEASE, ...
  bool write = false;
  long pid = 0;
  unsigned device_major = 0;
  unsigned device_minor = 0;
  unsigned long long inode = 0;
};

std::optional<kernel_lock> parse_lock_line(const std::string& line) {
  std::istringstream in(line);
  std::string number, kind, mode, access, device;
  kernel_lock lock;
  if (!(in >> number >> kind) || kind == "->") return std::nullopt;
  if (!(in >> mode >> access >> lock.pid >> device)) return std::nullopt;
  if (std::sscanf(device.c_str(), "%x:%x:%llu", &lock.device_major, &lock.device_minor, &lock.inode) != 3) {
    return std::nullopt;
  }
  lock.kind = kind;
  lock.write = access == "WRITE";
  return lock;
}

bool is_record_lock(const kernel_lock& lock) { return lock.kind == "POSIX" || lock.kind == "OFDLCK"; }

bool same_file(const kernel_lock& lock, const struct stat& file) {
  return lock.inode == static_cast<unsigned long long>(file.st_ino) && lock.device_major == major(file.st_dev) &&
         lock.device_minor == minor(file.st_dev);
}

std::vector<kernel_lock> proc_locks_for(const struct stat& file) {
  std::vector<kernel_lock> found;
  std::ifstream in("/proc/locks");
  std::string line;
  while (std::getline(in, line)) {
    auto lock = parse_lock_line(line);
    if (lock && same_file(*lock, file)) found.push_back(*lock);
  }
  return found;
}

bool all_digits(const char* text) {
  if (*text == '\0') return false;
  for (; *text != '\0'; ++text) {
    if (*text < '0' || *text > '9') return false;
  }
  return true;
}

std::string process_name(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  std::getline(in, name);
  return name;
}

void find_holders(const struct stat& file, lock_status& status) {
  for (const auto& lock : proc_locks_for(file)) {
    if (lock.kind == "POSIX" && lock.pid > 0) add_holder(status.holders, lock.pid, lock.write);
  }
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return;
  while (const dirent* process = ::readdir(proc)) {
    if (!all_digits(process->d_name)) continue;
    const std::string base = std::string("/proc/") + process->d_name;
    DIR* fds = ::opendir((base + "/fdinfo").c_str());
    if (fds == nullptr) continue;  // gone, or not ours to look at
    while (const dirent* fd = ::readdir(fds)) {
      if (!all_digits(fd->d_name)) continue;
      std::ifstream info(base + "/fdinfo/" + fd->d_name);
      std::string line;
      std::vector<kernel_lock> locks;
      while (std::getline(info, line)) {
        if (line.compare(0, 5, "lock:") != 0) continue;
        auto lock = parse_lock_line(line.substr(5));
        if (lock && lock->inode == static_cast<unsigned long long>(file.st_ino)) locks.push_back(*lock);
      }
      if (locks.empty()) continue;
      // The device numbers in lock lines can differ from st_dev (btrfs,
      // overlayfs); stat() through the descriptor settles which file it is.
      struct stat target {};
      const std::string link = base + "/fd/" + fd->d_name;
      if (::stat(link.c_str(), &target) != 0 || target.st_dev != file.st_dev || target.st_ino != file.st_ino) {
        continue;
      }
      const long pid = std::strtol(process->d_name, nullptr, 10);
      for (const auto& lock : locks) {
        if (is_record_lock(lock)) {
          add_holder(status.holders, pid, lock.write);
        } else if (lock.kind == "FLOCK") {
          add_holder(status.flock_holders, pid, lock.write);
        }
      }
    }
    ::closedir(fds);
  }
  ::closedir(proc);
}

// For a lock file we may not open: /proc/locks still tells its state.
lock_status status_from_proc_locks(const std::filesystem::path& path, int open_error) {
  struct stat file {};
  if (::lstat(path.c_str(), &file) != 0 || !S_ISREG(file.st_mode) || access("/proc/locks", R_OK) != 0) {
    throw std::system_error(open_error, std::system_category(), path.string());
  }
  lock_status status;
  status.state = lock_state::free;
  for (const auto& lock : proc_locks_for(file)) {
    if (!is_record_lock(lock)) continue;
    if (lock.write) {
      status.state = lock_state::exclusive;
    } else if (status.state == lock_state::free) {
      status.state = lock_state::shared;
    }
  }
  find_holders(file, status);
  return status;
}
#endif

void sort_and_name(std::vector<lock_holder>& list) {
  std::sort(list.begin(), list.end(), [](const lock_holder& a, const lock_holder& b) { return a.pid < b.pid; });
#if defined(__linux__)
  for (auto& holder : list) holder.name = process_name(holder.pid);
#endif
}

}  // namespace

lock_status query_lock_status(const std::filesystem::path& path) {
  lock_status status;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT) return status;  // lock_state::missing
#if defined(__linux__)
    if (error == EACCES) {
      status = status_from_proc_locks(path, error);
      sort_and_name(status.holders);
      sort_and_name(status.flock_holders);
      return status;
    }
#endif
    throw std::system_error(error, std::system_category(), path.string());
  }
  struct stat file {};
  try {
    if (::fstat(fd, &file) != 0) throw std::system_error(errno, std::system_category(), path.string());
    if (!S_ISREG(file.st_mode)) {
      throw std::system_error(S_ISDIR(file.st_mode) ? EISDIR : EINVAL, std::system_category(), path.string());
    }
    const probe_answer as_writer = probe(fd, F_WRLCK, path);
    if (as_writer.type == F_UNLCK) {
      status.state = lock_state::free;
    } else if (as_writer.type == F_WRLCK) {
      status.state = lock_state::exclusive;
    } else {
      status.state = probe(fd, F_RDLCK, path).type == F_UNLCK ? lock_state::shared : lock_state::exclusive;
    }
#if defined(__linux__)
    find_holders(file, status);
#endif
    if (status.holders.empty() && as_writer.type != F_UNLCK && as_writer.pid > 0) {
      add_holder(status.holders, as_writer.pid, as_writer.type == F_WRLCK);
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  sort_and_name(status.holders);
  sort_and_name(status.flock_holders);
  return status;
}

}  // namespace fasten
