// Cross-process test helper: the tests re-execute this binary so that each
// scenario runs in a real, separate process.
//
//   hold PATH exclusive|shared           lock, print "locked", wait for stdin EOF, unlock
//   try PATH exclusive|shared            one attempt: exit 0 if acquired, 3 if busy
//   wait PATH exclusive|shared MS        try_lock_for(MS): exit 0 / 3
//   increment LOCK COUNTER THREADS N shared-object|own-object
//                                        THREADS threads each add 1 to COUNTER N times
//   writer LOCK RECORD N                 N times: write a record in two halves, pausing between
//   reader LOCK RECORD N                 N times: read the record; exit 1 if it is torn
// Exit codes: 0 done/acquired, 1 check failed, 2 error, 3 busy, 64 usage.
#include <fasteners/interprocess_lock.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace {

using fasteners::interprocess_reader_writer_lock;

int usage() {
  std::cerr << "usage: fasteners_test_helper hold|try|wait|increment|writer|reader ...\n";
  return 64;
}

bool exclusive(const std::string& kind) { return kind != "shared"; }

long read_number(const std::string& path) {
  std::ifstream in(path);
  long value = 0;
  in >> value;
  return value;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.flush();
}

int hold(const std::string& path, const std::string& kind) {
  interprocess_reader_writer_lock lock(path);
  if (exclusive(kind)) {
    lock.lock();
  } else {
    lock.lock_shared();
  }
  std::cout << "locked" << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  if (exclusive(kind)) {
    lock.unlock();
  } else {
    lock.unlock_shared();
  }
  std::cout << "released" << std::endl;
  return 0;
}

int try_once(const std::string& path, const std::string& kind, long wait_ms) {
  interprocess_reader_writer_lock lock(path);
  bool got;
  if (wait_ms < 0) {
    got = exclusive(kind) ? lock.try_lock() : lock.try_lock_shared();
  } else {
    const auto timeout = std::chrono::milliseconds(wait_ms);
    got = exclusive(kind) ? lock.try_lock_for(timeout) : lock.try_lock_shared_for(timeout);
  }
  if (!got) return 3;
  if (exclusive(kind)) {
    lock.unlock();
  } else {
    lock.unlock_shared();
  }
  return 0;
}

int increment(const std::string& lock_path, const std::string& counter, int threads, int times, bool shared_object) {
  auto shared_lock = std::make_shared<fasteners::interprocess_lock>(lock_path);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      auto lock = shared_object ? shared_lock : std::make_shared<fasteners::interprocess_lock>(lock_path);
      for (int i = 0; i < times; ++i) {
        std::lock_guard<fasteners::interprocess_lock> guard(*lock);
        const long value = read_number(counter);
        write_text(counter, std::to_string(value + 1));
      }
    });
  }
  for (auto& w : workers) w.join();
  return 0;
}

// The record is 64 bytes; a writer writes 32 copies of one letter, pauses,
// then 32 more, so a reader that gets in between sees two letters.
int writer(const std::string& lock_path, const std::string& record, int times) {
  interprocess_reader_writer_lock lock(lock_path);
  for (int i = 0; i < times; ++i) {
    auto guard = lock.write_lock();
    const char letter = static_cast<char>('a' + i % 26);
    {
      std::fstream f(record, std::ios::in | std::ios::out);
      f.seekp(0);
      f << std::string(32, letter);
      f.flush();
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      f << std::string(32, letter);
      f.flush();
    }
  }
  return 0;
}

int reader(const std::string& lock_path, const std::string& record, int times) {
  interprocess_reader_writer_lock lock(lock_path);
  for (int i = 0; i < times; ++i) {
    auto guard = lock.read_lock();
    std::ifstream f(record);
    std::string content((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (content.size() != 64) {
      std::cerr << "reader: record has " << content.size() << " bytes\n";
      return 1;
    }
    for (char c : content) {
      if (c != content[0]) {
        std::cerr << "reader: torn record '" << content << "'\n";
        return 1;
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return usage();
  try {
    const std::string& command = args[0];
    if (command == "hold" && args.size() == 3) return hold(args[1], args[2]);
    if (command == "try" && args.size() == 3) return try_once(args[1], args[2], -1);
    if (command == "wait" && args.size() == 4) return try_once(args[1], args[2], std::stol(args[3]));
    if (command == "increment" && args.size() == 6) {
      return increment(args[1], args[2], std::stoi(args[3]), std::stoi(args[4]), args[5] == "shared-object");
    }
    if (command == "writer" && args.size() == 4) return writer(args[1], args[2], std::stoi(args[3]));
    if (command == "reader" && args.size() == 4) return reader(args[1], args[2], std::stoi(args[3]));
    return usage();
  } catch (const std::system_error& e) {
    std::cerr << "helper: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "helper: " << e.what() << "\n";
    return 2;
  }
}
