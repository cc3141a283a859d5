// Keeps docs/RELIABILITY.md true: every row of its misuse table names a
// scenario here, every scenario here has a row, and each scenario really does
// what its row says (the std::errc, a fragment of the message, and whether the
// temporary directory stays empty).
// Every row of the table is a misuse on purpose (unlocking what is not held,
// locking twice): clang's thread-safety analysis would rightly refuse them.
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wthread-safety-analysis"
#endif

#include <fasteners/interprocess_lock.hpp>
#include <fasteners/reader_writer_lock.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "test_support.hpp"

#ifndef _WIN32
#include <sys/stat.h>
#include <sys/types.h>
#endif

namespace fs = std::filesystem;
using fasteners::test::error_of;
using fasteners::test::temp_dir;

namespace {

// What one scenario did.
struct outcome {
  std::errc code{};           // errc of the std::system_error thrown, {} if none
  std::string what;           // its message
  std::optional<bool> value;  // what the last try_* call answered, if the row is about that
  bool skipped = false;       // not applicable on this platform / as this user
  std::string skip_reason;
};

using scenario = std::function<outcome(const fs::path& dir)>;

template <class F>
outcome thrown(F&& f) {
  auto c = error_of(std::forward<F>(f));
  outcome o;
  o.code = c.code;
  o.what = c.what;
  return o;
}

outcome answered(bool v) {
  outcome o;
  o.value = v;
  return o;
}

#ifndef _WIN32  // only POSIX rows can find their setup unavailable
outcome skip(std::string reason) {
  outcome o;
  o.skipped = true;
  o.skip_reason = std::move(reason);
  return o;
}
#endif

std::map<std::string, scenario> scenarios() {
  using fasteners::interprocess_lock;
  using fasteners::interprocess_reader_writer_lock;
  using fasteners::reader_writer_lock;
  std::map<std::string, scenario> s;
  // Paths.
  s["R02"] = [](const fs::path& d) {
    return thrown([&] {
      interprocess_lock l(d / std::string("nul\0file.lock", 13));
      l.lock();
    });
  };
  s["R03"] = [](const fs::path& d) {
    return thrown([&] {
      interprocess_lock l(d / std::string("sub\0dir", 7) / "x.lock");
      l.lock();
    });
  };
#ifndef _WIN32
  s["R01"] = [](const fs::path&) {
    return thrown([] {
      interprocess_lock l("");
      l.lock();
    });
  };
  s["R04"] = [](const fs::path& d) {
    return thrown([&] {
      interprocess_lock l((d / "newdir").string() + "/");
      l.lock();
    });
  };
  s["R05"] = [](const fs::path& d) {
    return thrown([&] {
      interprocess_lock l(d / "d1" / "d2" / std::string(300, 'x'));
      l.lock();
    });
  };
  s["R06"] = [](const fs::path& d) {
    fasteners::test::write_file(d / "file", "content");
    return thrown([&] {
      interprocess_lock l(d / "file" / "x.lock");
      l.lock();
    });
  };
  s["R07"] = [](const fs::path& d) {
    fs::create_directory(d / "adir");
    return thrown([&] {
      interprocess_lock l(d / "adir");
      l.lock();
    });
  };
  s["R08"] = [](const fs::path& d) {
    fs::create_directory(d / "adir");
    return thrown([&] {
      interprocess_reader_writer_lock l(d / "adir");
      l.lock_shared();
    });
  };
  s["R09"] = [](const fs::path& d) {
    fasteners::interprocess_options o;
    o.create_parent_directories = false;
    return thrown([&] {
      interprocess_lock l(d / "missing" / "x.lock", o);
      l.lock();
    });
  };
  s["R10"] = [](const fs::path& d) {
    if (::mkfifo((d / "fifo").c_str(), 0600) != 0) return skip("mkfifo failed");
    return thrown([&] {
      interprocess_lock l(d / "fifo");
      l.lock();
    });
  };
  s["R11"] = [](const fs::path& d) {
    fasteners::test::write_file(d / "target", "");
    fs::create_symlink(d / "target", d / "link");
    return thrown([&] {
      interprocess_lock l(d / "link");
      l.lock();
    });
  };
  s["R12"] = [](const fs::path& d) {
    fs::create_symlink(d / "nowhere", d / "dangling");
    return thrown([&] {
      interprocess_lock l(d / "dangling");
      l.lock();
    });
  };
  s["R13"] = [](const fs::path&) {
    return thrown([] {
      interprocess_lock l("/dev/null");
      l.lock();
    });
  };
  s["R14"] = [](const fs::path&) {
    return thrown([] {
      interprocess_lock l("/proc/self/fasteners-no-such/x.lock");
      l.lock();
    });
  };
#endif
  // interprocess_lock misuse.
  s["R20"] = [](const fs::path& d) {
    return thrown([&] {
      interprocess_lock l(d / "a.lock");
      l.unlock();
    });
  };
  s["R21"] = [](const fs::path& d) {
    return thrown([&] {
      interprocess_lock l(d / "a.lock");
      l.lock();
      l.unlock();
      l.unlock();
    });
  };
  s["R22"] = [](const fs::path& d) {
    interprocess_lock l(d / "a.lock");
    l.lock();
    outcome o;
    std::thread t([&] { o = thrown([&] { l.unlock(); }); });
    t.join();
    l.unlock();
    return o;
  };
  s["R23"] = [](const fs::path& d) {
    interprocess_lock l(d / "a.lock");
    l.lock();
    auto o = thrown([&] { l.lock(); });
    l.unlock();
    return o;
  };
  s["R24"] = [](const fs::path& d) {
    interprocess_lock a(d / "a.lock");
    interprocess_lock b(d / "a.lock");
    a.lock();
    auto o = thrown([&] { b.lock(); });
    a.unlock();
    return o;
  };
  s["R25"] = [](const fs::path& d) {
    interprocess_lock l(d / "a.lock");
    l.lock();
    bool v = l.try_lock();
    l.unlock();
    return answered(v);
  };
  s["R26"] = [](const fs::path& d) {
    interprocess_lock l(d / "a.lock");
    l.lock();
    auto o = thrown([&] { (void)l.try_lock_for(std::chrono::milliseconds(50)); });
    l.unlock();
    return o;
  };
  s["R27"] = [](const fs::path& d) {
    interprocess_lock a(d / "a.lock");
    interprocess_lock b(d / "a.lock");
    a.lock();
    bool v = true;
    std::thread t([&] { v = b.try_lock_for(std::chrono::milliseconds(-1000)); });
    t.join();
    a.unlock();
    return answered(v);
  };
  s["R28"] = [](const fs::path& d) {
    interprocess_lock l(d / "a.lock");
    bool v = l.try_lock_until(std::chrono::system_clock::time_point::min());
    if (v) l.unlock();
    return answered(v);
  };
  s["R29"] = [](const fs::path& d) {
    interprocess_lock a(d / "a.lock");
    interprocess_lock b(d / "a.lock");
    a.lock();
    bool v = true;
    auto start = std::chrono::steady_clock::now();
    std::thread t([&] { v = b.try_lock_until(std::chrono::system_clock::time_point::min()); });
    t.join();
    a.unlock();
    if (std::chrono::steady_clock::now() - start > std::chrono::milliseconds(500)) {
      return answered(true);  // it waited: the row says one try
    }
    return answered(v);
  };
  // interprocess_reader_writer_lock misuse.
  s["R30"] = [](const fs::path& d) {
    return thrown([&] {
      interprocess_reader_writer_lock l(d / "rw.lock");
      l.unlock_shared();
    });
  };
  s["R31"] = [](const fs::path& d) {
    interprocess_reader_writer_lock l(d / "rw.lock");
    l.lock();
    auto o = thrown([&] { l.unlock_shared(); });
    l.unlock();
    return o;
  };
  s["R32"] = [](const fs::path& d) {
    interprocess_reader_writer_lock l(d / "rw.lock");
    l.lock_shared();
    auto o = thrown([&] { l.unlock(); });
    l.unlock_shared();
    return o;
  };
  s["R33"] = [](const fs::path& d) {
    interprocess_reader_writer_lock l(d / "rw.lock");
    l.lock();
    auto o = thrown([&] { l.lock_shared(); });
    l.unlock();
    return o;
  };
  s["R34"] = [](const fs::path& d) {
    interprocess_reader_writer_lock l(d / "rw.lock");
    l.lock_shared();
    auto o = thrown([&] { l.lock(); });
    l.unlock_shared();
    return o;
  };
  s["R35"] = [](const fs::path& d) {
    interprocess_reader_writer_lock l(d / "rw.lock");
    l.lock_shared();
    bool v = l.try_lock();
    l.unlock_shared();
    return answered(v);
  };
  s["R36"] = [](const fs::path& d) {
    return thrown([&] {
      interprocess_reader_writer_lock l(d / "rw.lock");
      l.unlock_and_lock_shared();
    });
  };
  s["R37"] = [](const fs::path& d) {
    interprocess_reader_writer_lock l(d / "rw.lock");
    l.lock_shared();
    auto o = thrown([&] { l.unlock_and_lock_shared(); });
    l.unlock_shared();
    return o;
  };
  s["R38"] = [](const fs::path& d) {
    interprocess_reader_writer_lock l(d / "rw.lock");
    l.lock_shared();
    l.lock_shared();
    l.unlock_shared();
    bool still = l.is_reader();
    l.unlock_shared();
    return answered(still);
  };
  s["R39"] = [](const fs::path& d) {
    interprocess_reader_writer_lock l(d / "rw.lock");
    l.lock();
    bool v = l.try_lock_shared();
    if (v) l.unlock_shared();
    l.unlock();
    return answered(v);
  };
  // reader_writer_lock (inter-thread) misuse.
  s["R40"] = [](const fs::path&) {
    reader_writer_lock l;
    l.lock_shared();
    auto o = thrown([&] { l.lock(); });
    l.unlock_shared();
    return o;
  };
  s["R41"] = [](const fs::path&) {
    return thrown([] {
      reader_writer_lock l;
      l.unlock();
    });
  };
  s["R42"] = [](const fs::path&) {
    return thrown([] {
      reader_writer_lock l;
      l.unlock_shared();
    });
  };
  s["R43"] = [](const fs::path&) {
    reader_writer_lock l;
    l.lock_shared();
    bool v = l.try_lock();
    l.unlock_shared();
    return answered(v);
  };
  s["R44"] = [](const fs::path&) {
    return thrown([] {
      reader_writer_lock l;
      l.unlock_and_lock_shared();
    });
  };
  s["R45"] = [](const fs::path&) {
    reader_writer_lock l;
    l.lock();
    outcome o;
    std::thread t([&] { o = thrown([&] { l.unlock(); }); });
    t.join();
    l.unlock();
    return o;
  };
  return s;
}

// One row of the table.
struct row {
  std::string id, gets, errc, fragment, disk;
};

std::string trim(std::string s) {
  auto b = s.find_first_not_of(" \t");
  auto e = s.find_last_not_of(" \t");
  if (b == std::string::npos) return {};
  s = s.substr(b, e - b + 1);
  return s;
}

std::string unquote(std::string s) {
  s = trim(s);
  if (s.size() >= 2 && s.front() == '`' && s.back() == '`') s = s.substr(1, s.size() - 2);
  return s;
}

std::vector<std::string> cells(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool in_code = false;
  for (std::size_t i = 1; i < line.size(); ++i) {
    char c = line[i];
    if (c == '`') in_code = !in_code;
    if (c == '|' && !in_code) {
      out.push_back(trim(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  return out;
}

std::vector<row> table() {
  std::ifstream in(FASTENERS_SOURCE_DIR "/docs/RELIABILITY.md");
  std::vector<row> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("| R", 0) != 0 && line.rfind("| `R", 0) != 0) continue;
    auto c = cells(line);
    if (c.size() < 6) continue;
    rows.push_back({unquote(c[0]), c[2], unquote(c[3]), unquote(c[4]), c[5]});
  }
  return rows;
}

std::map<std::string, std::errc> errc_names() {
  return {{"invalid_argument", std::errc::invalid_argument},
          {"is_a_directory", std::errc::is_a_directory},
          {"filename_too_long", std::errc::filename_too_long},
          {"not_a_directory", std::errc::not_a_directory},
          {"no_such_file_or_directory", std::errc::no_such_file_or_directory},
          {"too_many_symbolic_link_levels", std::errc::too_many_symbolic_link_levels},
          {"permission_denied", std::errc::permission_denied},
          {"operation_not_permitted", std::errc::operation_not_permitted},
          {"resource_deadlock_would_occur", std::errc::resource_deadlock_would_occur},
          {"read_only_file_system", std::errc::read_only_file_system},
          {"file_exists", std::errc::file_exists}};
}

std::string errc_name(std::errc c) {
  if (c == std::errc{}) return "none";
  for (const auto& [name, code] : errc_names())
    if (code == c) return name;
  return "errc(" + std::to_string(static_cast<int>(c)) + ")";
}

bool is_empty_dir(const fs::path& p) { return fs::is_empty(p); }

}  // namespace

TEST(ReliabilityDoc, EveryRowHasAScenarioAndEveryScenarioARow) {
  auto rows = table();
  ASSERT_GE(rows.size(), 30u) << "docs/RELIABILITY.md lists fewer than 30 rows";
  auto s = scenarios();
  std::map<std::string, int> seen;
  for (const auto& r : rows) {
    ++seen[r.id];
#ifndef _WIN32
    EXPECT_TRUE(s.count(r.id)) << r.id << " is in the table but has no scenario";
#endif
  }
  for (const auto& [id, n] : seen) EXPECT_EQ(n, 1) << id << " appears " << n << " times";
  for (const auto& [id, f] : s) EXPECT_TRUE(seen.count(id)) << id << " has a scenario but no row";
}

TEST(ReliabilityDoc, EveryRowIsWhatTheLibraryDoes) {
  auto s = scenarios();
  int checked = 0;
  for (const auto& r : table()) {
    auto it = s.find(r.id);
    if (it == s.end()) continue;  // POSIX-only rows on Windows; the test above names any other
    SCOPED_TRACE(r.id);
    temp_dir dir;
    outcome o = it->second(dir.path());
    if (o.skipped) {
      std::cout << r.id << " skipped: " << o.skip_reason << "\n";
      continue;
    }
    ++checked;
    std::cout << r.id << " | " << errc_name(o.code) << " | " << o.what << " | "
              << (o.value ? (*o.value ? "true" : "false") : "-") << "\n";
    if (r.errc == "none") {
      EXPECT_EQ(o.code, std::errc{}) << r.id << " threw: " << o.what;
      if (r.gets.find("`false`") != std::string::npos) {
        EXPECT_EQ(o.value, std::optional<bool>(false)) << r.id;
      } else if (r.gets.find("`true`") != std::string::npos) {
        EXPECT_EQ(o.value, std::optional<bool>(true)) << r.id;
      }
    } else {
      auto names = errc_names();
      auto n = names.find(r.errc);
      ASSERT_NE(n, names.end()) << r.id << ": unknown errc name '" << r.errc << "'";
      EXPECT_EQ(o.code, n->second) << r.id << " gave " << errc_name(o.code) << ": " << o.what;
      EXPECT_NE(o.what.find(r.fragment), std::string::npos)
          << r.id << ": '" << o.what << "' lacks '" << r.fragment << "'";
    }
    if (r.disk.rfind("nothing", 0) == 0 || r.disk.rfind("Nothing", 0) == 0) {
      EXPECT_TRUE(is_empty_dir(dir.path())) << r.id << " left something in the directory";
    }
  }
  EXPECT_GE(checked, 20);
}
