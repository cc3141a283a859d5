// fasten's exit statuses, in one place so that the code, the help text, the
// man page and the tests agree. Values from sysexits.h, spelled out so that
// platforms without that header build the same tool.
#pragma once

namespace fasten::exit_code {

// After the command ran: its own status, or 128+N if signal N killed it.
inline constexpr int command_not_executable = 126;  // found but could not be executed
inline constexpr int command_not_found = 127;

// -n or -w gave up; -E/--conflict-exit-code changes it.
inline constexpr int default_conflict = 1;

// --status
inline constexpr int status_free = 0;  // also when the lock file does not exist
inline constexpr int status_shared = 1;
inline constexpr int status_exclusive = 2;

// sysexits.h
inline constexpr int usage = 64;          // EX_USAGE: bad command line
inline constexpr int no_input = 66;       // EX_NOINPUT: the path cannot be a lock file (directory, FIFO, symlink...)
inline constexpr int os_error = 71;       // EX_OSERR: fork failed, locking failed for a reason other than "busy"
inline constexpr int cant_create = 73;    // EX_CANTCREAT: the lock file cannot be created (read-only fs, no space)
inline constexpr int no_permission = 77;  // EX_NOPERM: permission denied

}  // namespace fasten::exit_code
