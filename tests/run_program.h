// Running a program of the build from a test: its exit status and its output (stdout and stderr
// together). The tests of examples/train, examples/generate and bench/colt5_bench use it.
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace colt5::testing {

struct Run {
  int status;  // the exit status, or 128 + the signal that ended it
  std::string output;
};

// `built` with `args`; the environment variable `env_name`, when set, overrides the path (a build
// folder copied to another machine).
inline Run run_program(const char* env_name, const char* built, const std::string& args) {
  const char* env = std::getenv(env_name);
  const std::string cmd = std::string(env ? env : built) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), out};
}

// A program started in the background (for tests that signal it): its pid, and its output
// (stdout and stderr together) going to `log`.
struct Started {
  pid_t pid = -1;
  std::string log;
  std::string output() const {  // what it has written so far
    std::ifstream f(log);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  // Polls output() until it contains `text` (true) or `seconds` pass (false).
  bool wait_for_output(const std::string& text, double seconds) const {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
      if (output().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  // waitpid: the exit status, or 128 + the signal that ended it.
  int wait() const {
    int st = 0;
    REQUIRE(::waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  bool killed_by_signal(int* sig) const {  // waitpid, true when a signal ended it (*sig = which)
    int st = 0;
    REQUIRE(::waitpid(pid, &st, 0) == pid);
    if (WIFSIGNALED(st)) *sig = WTERMSIG(st);
    return WIFSIGNALED(st);
  }
};

inline Started start_program(const std::string& program, const std::vector<std::string>& args, const std::string& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  std::vector<char*> argv{const_cast<char*>(program.c_str())};
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  Started s;
  s.log = log;
  const int rc = posix_spawn(&s.pid, program.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  REQUIRE(rc == 0);
  return s;
}

}  // namespace colt5::testing
