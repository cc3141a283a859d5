// Every socket of every session in this process, so that a fork child can
// close them all (from the atfork handler: no locks, no allocation) without
// telling the server anything. A session socket left open in a child would
// keep the parent's session, and its locks, alive after the parent died.
#pragma once

namespace fasteners::detail {

void register_session_socket(int fd) noexcept;
void unregister_session_socket(int fd) noexcept;
// Closes `fd` if it is still registered (exactly once, whoever asks first)
// and still the socket that was registered (libpq closes a broken
// connection's socket itself; the number may have been reused since).
void close_registered_socket(int fd) noexcept;
// In a fork child: closes every registered socket and runs the handlers
// added with on_fork_child (the watcher and the session pool forget theirs).
void install_fork_handler() noexcept;
void on_fork_child(void (*handler)()) noexcept;

}  // namespace fasteners::detail
