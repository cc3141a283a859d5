// The platform half of fasten, part 1: starting the command, relaying signals
// to it and waiting for it. One implementation per platform:
// run_command_posix.cpp (fork/execvp), run_command_windows.cpp (CreateProcessW).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace fasten {

struct command_request {
  // argv[0] is looked up in PATH.
  std::vector<std::string> argv;
  // Not -1: the descriptor carrying fasten's lock (the library's
  // native_handle()), which the command inherits where the platform can pass
  // the lock on; -1: the command gets no lock.
  std::intptr_t inherit_lock_handle = -1;
};

// What a command string given with -c runs as: {"/bin/sh", "-c", text}.
std::vector<std::string> shell_command(const std::string& text);

// True if a command started by run_command() with inherit_lock_handle set really
// holds the lock too, so that it stays locked until the command and everything
// it left running are gone, even if fasten itself is killed.
bool command_can_inherit_lock() noexcept;

// Runs the command to completion. While it runs, termination signals sent to
// fasten (SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2) are relayed to
// it, and fasten itself does not die of them. Returns fasten's exit status:
// the command's, 128+N if signal N killed it, 127 if it was not found, 126 if
// it could not be executed (after printing why), 71 if it could not be started.
// `inherited` is set to whether the command holds the lock as well.
int run_command(const command_request& request, bool& inherited);

}  // namespace fasten
