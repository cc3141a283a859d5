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
//
// Holders come and go while we look (a scan of /proc takes milliseconds), so
// one answer is one snapshot: see snapshot_status(). kcmp(KCMP_FILE), where
// the kernel allows it, tells one description seen through two descriptors
// (fasten and its command) from two descriptions (a hand-over mid-scan).
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
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
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

bool operator==(const kernel_lock& a, const kernel_lock& b) {
  return a.kind == b.kind && a.write == b.write && a.pid == b.pid && a.device_major == b.device_major &&
         a.device_minor == b.device_minor && a.inode == b.inode;
}

// The lines of /proc/locks about our inode (on any device: see same_device),
// from a single read(2), which the kernel fills from one pass over its lock
// lists for up to a page of output. Empty if /proc/locks cannot be read.
std::optional<std::vector<kernel_lock>> proc_locks_snapshot(const struct stat& file) {
  const int fd = ::open("/proc/locks", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string text;
  char buffer[65536];
  for (;;) {
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    text.append(buffer, static_cast<std::size_t>(got));
  }
  ::close(fd);
  std::vector<kernel_lock> found;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto lock = parse_lock_line(line);
    if (lock && lock->inode == static_cast<unsigned long long>(file.st_ino)) found.push_back(*lock);
  }
  return found;
}

// One descriptor that has the lock file open, and the locks its fdinfo lists.
struct opener {
  long pid = 0;
  std::string fd;
  std::vector<kernel_lock> locks;  // on our file, as fdinfo "lock:" lines show them
  friend bool operator==(const opener& a, const opener& b) {
    return a.pid == b.pid && a.fd == b.fd && a.locks == b.locks;
  }
};

std::string proc_path(long pid, const char* what, const std::string& fd) {
  return "/proc/" + std::to_string(pid) + "/" + what + "/" + fd;
}

// The fdinfo of one descriptor: whether it names our inode ("ino:", or a
// lock line for it where the kernel prints no "ino:"), and its lock lines.
// False if it is gone or hidden from us.
bool read_fdinfo(long pid, const std::string& fd, const struct stat& file, bool& ours,
                 std::vector<kernel_lock>& locks) {
  std::ifstream info(proc_path(pid, "fdinfo", fd));
  if (!info) return false;
  const auto inode = static_cast<unsigned long long>(file.st_ino);
  bool has_ino_line = false;
  ours = false;
  locks.clear();
  std::string line;
  while (std::getline(info, line)) {
    if (line.compare(0, 4, "ino:") == 0) {
      has_ino_line = true;
      ours = std::strtoull(line.c_str() + 4, nullptr, 10) == inode;
    } else if (line.compare(0, 5, "lock:") == 0) {
      auto lock = parse_lock_line(line.substr(5));
      if (lock && lock->inode == inode) locks.push_back(*lock);
    }
  }
  if (!has_ino_line) ours = !locks.empty();
  return true;
}

struct scan {
  std::vector<opener> openers;
  bool hidden = false;  // some process's descriptors are not ours to see
};

// Every descriptor, in every process we may inspect, open on the lock file.
scan find_openers(const struct stat& file) {
  scan found;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) {
    found.hidden = true;
    return found;
  }
  while (const dirent* process = ::readdir(proc)) {
    if (!all_digits(process->d_name)) continue;
    const long pid = std::strtol(process->d_name, nullptr, 10);
    DIR* fds = ::opendir(("/proc/" + std::string(process->d_name) + "/fdinfo").c_str());
    if (fds == nullptr) {
      if (errno == EACCES || errno == EPERM) found.hidden = true;
      continue;  // gone, or not ours to look at
    }
    while (const dirent* fd = ::readdir(fds)) {
      if (!all_digits(fd->d_name)) continue;
      opener candidate{pid, fd->d_name, {}};
      bool ours = false;
      if (!read_fdinfo(pid, candidate.fd, file, ours, candidate.locks) || !ours) continue;
      // Inode numbers repeat across file systems; stat() through the
      // descriptor settles which file it is (the device in lock lines can
      // differ from st_dev on btrfs and overlayfs).
      struct stat target {};
      const std::string link = proc_path(pid, "fd", candidate.fd);
      if (::stat(link.c_str(), &target) != 0 || target.st_dev != file.st_dev || target.st_ino != file.st_ino) {
        continue;
      }
      found.openers.push_back(std::move(candidate));
    }
    ::closedir(fds);
  }
  ::closedir(proc);
  return found;
}

// The openers' lock lines read again, quickly, for those still there.
std::vector<opener> reread(const std::vector<opener>& openers, const struct stat& file) {
  std::vector<opener> now;
  for (const auto& previous : openers) {
    opener again{previous.pid, previous.fd, {}};
    bool ours = false;
    if (read_fdinfo(again.pid, again.fd, file, ours, again.locks) && ours) now.push_back(std::move(again));
  }
  return now;
}

#if defined(SYS_kcmp)
// 1 if the two descriptors share one open file description, 0 if not, -1 if
// the kernel will not say (no kcmp, or not ours to compare).
int same_description(const opener& a, const opener& b) {
  const long result = ::syscall(SYS_kcmp, static_cast<pid_t>(a.pid), static_cast<pid_t>(b.pid), 0 /* KCMP_FILE */,
                                std::strtoul(a.fd.c_str(), nullptr, 10), std::strtoul(b.fd.c_str(), nullptr, 10));
  if (result == 0) return 1;
  if (result > 0) return 0;
  return errno == ESRCH || errno == EBADF ? 0 : -1;
}
#else
int same_description(const opener&, const opener&) { return -1; }
#endif

bool is_ofd(const kernel_lock& lock) { return lock.kind == "OFDLCK"; }

lock_state state_of(const std::vector<kernel_lock>& locks) {
  lock_state state = lock_state::free;
  for (const auto& lock : locks) {
    if (!is_record_lock(lock)) continue;
    if (lock.write) return lock_state::exclusive;
    state = lock_state::shared;
  }
  return state;
}

enum class accounting { complete, short_of_hidden, inconsistent };

// Whether the openers account for the record locks /proc/locks lists: one
// open file description holds a write lock at most, and each OFD lock is seen
// through at least one descriptor, or may be held by a process we cannot see.
accounting accounts_for(const std::vector<kernel_lock>& locks, const std::vector<opener>& openers, bool hidden) {
  std::size_t ofd_writes = 0, ofd_reads = 0;
  for (const auto& lock : locks) {
    if (is_ofd(lock)) ++(lock.write ? ofd_writes : ofd_reads);
  }
  std::vector<const opener*> writers;
  std::size_t readers = 0;
  for (const auto& o : openers) {
    bool writes = false, reads = false;
    for (const auto& lock : o.locks) {
      if (!is_ofd(lock)) continue;
      (lock.write ? writes : reads) = true;
    }
    if (writes) writers.push_back(&o);
    if (reads) ++readers;
  }
  if (ofd_writes == 0 && !writers.empty()) return accounting::inconsistent;
  if (ofd_reads == 0 && readers != 0) return accounting::inconsistent;
  // Several descriptors with a write lock on one file: one description shared
  // (fasten and its command), or a scan that straddled a hand-over.
  for (std::size_t i = 1; i < writers.size(); ++i) {
    if (same_description(*writers[0], *writers[i]) == 0) return accounting::inconsistent;
  }
  if ((ofd_writes == 0 || !writers.empty()) && readers >= ofd_reads) return accounting::complete;
  return hidden ? accounting::short_of_hidden : accounting::inconsistent;
}

void add_holders(const std::vector<kernel_lock>& locks, const std::vector<opener>& openers, lock_status& status) {
  for (const auto& lock : locks) {
    if (lock.kind == "POSIX" && lock.pid > 0) add_holder(status.holders, lock.pid, lock.write);
  }
  for (const auto& o : openers) {
    for (const auto& lock : o.locks) {
      if (is_record_lock(lock)) {
        add_holder(status.holders, o.pid, lock.write);
      } else if (lock.kind == "FLOCK") {
        add_holder(status.flock_holders, o.pid, lock.write);
      }
    }
  }
}

// The state and its holders as one snapshot. The kernel's word on the state
// (`probe`) and /proc/locks are read before and after the openers, the
// openers are read until two passes agree, and the whole is retried, for at
// most about a second, until everything agrees: a holder is named only by an
// answer consistent with itself, so never two exclusive holders and never
// "held" with the holder left out because it changed hands mid-scan. Without
// agreement, the kernel's last state and no names rather than wrong ones.
// False if /proc/locks cannot be read at all.
bool snapshot_status(const struct stat& file, const std::function<lock_state()>& probe_now, lock_status& status) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  lock_state before = probe_now();
  std::vector<kernel_lock> last_locks;
  std::vector<opener> last_openers;
  int hidden_rounds = 0;
  for (;;) {
    const auto locks = proc_locks_snapshot(file);
    if (!locks) return false;
    const scan found = find_openers(file);
    std::vector<opener> openers = reread(found.openers, file);
    for (int pass = 0; pass < 3; ++pass) {
      std::vector<opener> again = reread(openers, file);
      const bool settled = again == openers;
      openers = std::move(again);
      if (settled) break;
    }
    const auto locks_after = proc_locks_snapshot(file);
    const lock_state after = probe_now();
    // On btrfs and overlayfs the lock lines' device is not st_dev: keep the
    // lines on st_dev or on a device that a verified descriptor's lines show.
    auto on_our_device = [&](const kernel_lock& lock) {
      if (lock.device_major == major(file.st_dev) && lock.device_minor == minor(file.st_dev)) return true;
      for (const auto& o : openers) {
        for (const auto& seen : o.locks) {
          if (seen.device_major == lock.device_major && seen.device_minor == lock.device_minor) return true;
        }
      }
      return false;
    };
    std::vector<kernel_lock> ours;
    for (const auto& lock : *locks) {
      if (on_our_device(lock)) ours.push_back(lock);
    }
    const accounting accounted = locks_after && *locks == *locks_after && before == after && state_of(ours) == after
                                     ? accounts_for(ours, openers, found.hidden)
                                     : accounting::inconsistent;
    // Short of a holder that may be hidden from us: believable only once the
    // same picture has come back a few rounds running (a hand-over mid-scan
    // changes it from one round to the next).
    const bool same_as_last = accounted == accounting::short_of_hidden && ours == last_locks && openers == last_openers;
    hidden_rounds = same_as_last ? hidden_rounds + 1 : 0;
    last_locks = ours;
    last_openers = openers;
    if (accounted == accounting::complete || (accounted == accounting::short_of_hidden && hidden_rounds >= 3)) {
      status = lock_status{};
      status.state = after;
      add_holders(ours, openers, status);
      bool all_named = true;
      for (auto& holder : status.holders) {
        holder.name = process_name(holder.pid);
        all_named = all_named && !holder.name.empty();
      }
      for (auto& holder : status.flock_holders) holder.name = process_name(holder.pid);
      if (all_named) return true;  // a holder already gone makes it stale
    }
    if (std::chrono::steady_clock::now() >= give_up) {
      status = lock_status{};
      status.state = after;
      return true;
    }
    before = after;
  }
}

// For a lock file we may not open: /proc/locks still tells its state.
lock_status status_from_proc_locks(const std::filesystem::path& path, int open_error) {
  struct stat file {};
  if (::lstat(path.c_str(), &file) != 0 || !S_ISREG(file.st_mode)) {
    throw std::system_error(open_error, std::system_category(), path.string());
  }
  lock_status status;
  const auto from_proc_locks = [&file] {
    const auto locks = proc_locks_snapshot(file);
    std::vector<kernel_lock> ours;
    if (locks) {
      for (const auto& lock : *locks) {
        if (lock.device_major == major(file.st_dev) && lock.device_minor == minor(file.st_dev)) ours.push_back(lock);
      }
    }
    return state_of(ours);
  };
  if (!snapshot_status(file, from_proc_locks, status)) {
    throw std::system_error(open_error, std::system_category(), path.string());
  }
  return status;
}
#endif

lock_state probe_state(int fd, const std::filesystem::path& path, probe_answer* as_writer_out = nullptr) {
  const probe_answer as_writer = probe(fd, F_WRLCK, path);
  if (as_writer_out != nullptr) *as_writer_out = as_writer;
  if (as_writer.type == F_UNLCK) return lock_state::free;
  if (as_writer.type == F_WRLCK) return lock_state::exclusive;
  return probe(fd, F_RDLCK, path).type == F_UNLCK ? lock_state::shared : lock_state::exclusive;
}

void sort_holders(std::vector<lock_holder>& list) {
  std::sort(list.begin(), list.end(), [](const lock_holder& a, const lock_holder& b) { return a.pid < b.pid; });
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
      sort_holders(status.holders);
      sort_holders(status.flock_holders);
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
    bool snapshot = false;
#if defined(__linux__)
    snapshot = snapshot_status(
        file, [&] { return probe_state(fd, path); }, status);
#endif
    if (!snapshot) {
      // Where the system cannot tell more: the state, and the one holder
      // F_GETLK names (classic locks only; an OFD lock has no pid).
      probe_answer as_writer;
      status.state = probe_state(fd, path, &as_writer);
      if (as_writer.type != F_UNLCK && as_writer.pid > 0) {
        add_holder(status.holders, as_writer.pid, as_writer.type == F_WRLCK);
      }
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  sort_holders(status.holders);
  sort_holders(status.flock_holders);
  return status;
}

}  // namespace fasten
