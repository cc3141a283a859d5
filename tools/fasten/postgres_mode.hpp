// fasten --postgres: the same tool on a PostgreSQL advisory lock.
#pragma once

#include "options.hpp"

namespace fasten {

// A lost lock while the command runs: fasten warns, sends SIGTERM to the
// command, and exits with this (EX_TEMPFAIL) once it has ended.
inline constexpr int lost_lock_exit_code = 75;

int run_postgres(const options& opt);
// --status: 0 free, 1 held shared, 2 held exclusive (holders from pg_locks
// and pg_stat_activity).
int show_postgres_status(const options& opt);

}  // namespace fasten
