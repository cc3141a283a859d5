// Starting and waiting for the command on POSIX: fork and execvp.
#include "exit_codes.hpp"
#include "run_command.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <iterator>

namespace fasten {

namespace {

// The command's pid, for the signal handler; 0 when there is none.
volatile sig_atomic_t command_pid = 0;
static_assert(sizeof(pid_t) <= sizeof(sig_atomic_t), "a pid must fit in sig_atomic_t");

constexpr int relayed_signals[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};

extern "C" void relay_signal(int sig, siginfo_t* info, void*) {
  const auto pid = static_cast<pid_t>(command_pid);
  if (pid <= 0) return;
  // A signal the kernel sent (si_code > 0: Ctrl-C, Ctrl-\, hang-up from the
  // terminal) went to our whole process group, the command included; relaying
  // it would deliver it twice. Nor do we echo the command's own signals back.
  if (info != nullptr && (info->si_code > 0 || info->si_pid == pid)) return;
  const int saved_errno = errno;
  ::kill(pid, sig);
  errno = saved_errno;
}

bool set_cloexec(int fd) {
  const int flags = ::fcntl(fd, F_GETFD);
  return flags >= 0 && ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == 0;
}

}  // namespace

std::vector<std::string> shell_command(const std::string& text) { return {"/bin/sh", "-c", text}; }

bool command_can_inherit_lock() noexcept {
#if defined(FASTEN_COMMAND_INHERITS_LOCK)
  return true;
#else
  return false;
#endif
}

namespace {

// Signal dispositions around the command: SIGCHLD at its default (waitpid()
// needs it not ignored), the relayed signals caught and sent on to the
// command. Signals stay blocked from before fork() until command_pid is set,
// so none is lost in between. Ignored signals stay ignored, for the command
// too (a background job's SIGINT, nohup's SIGHUP).
class signal_relay {
 public:
  signal_relay() {
    struct sigaction child_default {};
    child_default.sa_handler = SIG_DFL;
    sigemptyset(&child_default.sa_mask);
    ::sigaction(SIGCHLD, &child_default, &child_saved_);
    sigset_t relayed;
    sigemptyset(&relayed);
    for (int sig : relayed_signals) sigaddset(&relayed, sig);
    ::sigprocmask(SIG_BLOCK, &relayed, &saved_mask_);
    for (std::size_t k = 0; k < std::size(relayed_signals); ++k) {
      struct sigaction current {};
      ::sigaction(relayed_signals[k], nullptr, &current);
      if ((current.sa_flags & SA_SIGINFO) == 0 && current.sa_handler == SIG_IGN) continue;
      struct sigaction relay {};
      relay.sa_sigaction = &relay_signal;
      relay.sa_mask = relayed;
      relay.sa_flags = SA_SIGINFO | SA_RESTART;
      installed_[k] = ::sigaction(relayed_signals[k], &relay, nullptr) == 0;
    }
  }
  // In the child before exec: what fasten was started with.
  void restore_for_command() const noexcept {
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    sigemptyset(&default_action.sa_mask);
    for (std::size_t k = 0; k < std::size(relayed_signals); ++k) {
      if (installed_[k]) ::sigaction(relayed_signals[k], &default_action, nullptr);
    }
    ::sigaction(SIGCHLD, &child_saved_, nullptr);
    unblock();
  }
  // In fasten, once command_pid is set (or fork failed).
  void unblock() const noexcept { ::sigprocmask(SIG_SETMASK, &saved_mask_, nullptr); }

 private:
  struct sigaction child_saved_ {};
  sigset_t saved_mask_{};
  bool installed_[std::size(relayed_signals)] = {};
};

// The errno of a failed exec the child wrote to the pipe, 0 if the exec
// succeeded (close-on-exec closed the pipe: end of file).
int read_exec_error(int fd) {
  int exec_error = 0;
  ssize_t got;
  do {
    got = ::read(fd, &exec_error, sizeof exec_error);
  } while (got < 0 && errno == EINTR);
  return got == static_cast<ssize_t>(sizeof exec_error) ? exec_error : 0;
}

// Waits for the command to end without reaping it first, so that its pid
// cannot be reused by someone else while the signal handler may still send
// to it; then reaps it. False (errno set) if waiting failed.
bool wait_for_command(pid_t pid, int& status) {
  siginfo_t ended{};
  int waited;
  do {
    waited = ::waitid(P_PID, static_cast<id_t>(pid), &ended, WEXITED | WNOWAIT);
  } while (waited < 0 && errno == EINTR);
  command_pid = 0;
  if (waited != 0) return false;
  pid_t reaped;
  do {
    reaped = ::waitpid(pid, &status, 0);
  } while (reaped < 0 && errno == EINTR);
  return reaped >= 0;
}

int report_exec_error(const std::string& name, int exec_error) {
  if (exec_error == ENOENT && name.find('/') == std::string::npos) {
    std::cerr << "fasten: " << name << ": command not found\n";
  } else {
    std::cerr << "fasten: " << name << ": " << std::strerror(exec_error) << "\n";
  }
  return exec_error == ENOENT ? exit_code::command_not_found : exit_code::command_not_executable;
}

}  // namespace

int run_command(const command_request& request, bool& inherited) {
  inherited = false;
  std::vector<char*> argv;
  for (const auto& arg : request.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);

  // Open-file-description locks pass to the command with the descriptor;
  // classic fcntl locks belong to a process and never pass by fork(). The
  // library's own descriptor is closed in every fork child (so that no child
  // keeps a dead parent's lock alive); the command gets a duplicate of it,
  // which is fasten's to hand on.
  const int lock_fd = command_can_inherit_lock() && request.inherit_lock_handle >= 0
                          ? ::fcntl(static_cast<int>(request.inherit_lock_handle), F_DUPFD_CLOEXEC, 3)
                          : -1;
  struct close_on_return {
    int fd;
    ~close_on_return() {
      if (fd >= 0) ::close(fd);
    }
  } lock_fd_closer{lock_fd};

  // The child reports a failed exec through this pipe.
  int report[2];
  if (::pipe(report) != 0 || !set_cloexec(report[0]) || !set_cloexec(report[1])) {
    std::cerr << "fasten: pipe: " << std::strerror(errno) << "\n";
    return exit_code::os_error;
  }

  const signal_relay relay;
  const pid_t pid = ::fork();
  if (pid == 0) {
    relay.restore_for_command();
    if (lock_fd >= 0) ::fcntl(lock_fd, F_SETFD, 0);
    ::execvp(argv[0], argv.data());
    const int error = errno;
    ssize_t ignored = ::write(report[1], &error, sizeof error);
    (void)ignored;
    ::_exit(exit_code::command_not_found);
  }
  if (pid < 0) {
    const int error = errno;
    relay.unblock();
    ::close(report[0]);
    ::close(report[1]);
    std::cerr << "fasten: cannot start '" << request.argv[0] << "': " << std::strerror(error) << "\n";
    return exit_code::os_error;
  }
  command_pid = pid;
  inherited = lock_fd >= 0;
  relay.unblock();
  ::close(report[1]);
  const int exec_error = read_exec_error(report[0]);
  ::close(report[0]);

  int status = 0;
  const bool waited = wait_for_command(pid, status);
  if (exec_error != 0) return report_exec_error(request.argv[0], exec_error);
  if (!waited) {
    std::cerr << "fasten: waiting for '" << request.argv[0] << "': " << std::strerror(errno) << "\n";
    return exit_code::os_error;
  }
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

}  // namespace fasten
