// Running a program of the build from a test: its exit status and its output (stdout and stderr
// together). The tests of examples/train, examples/generate and bench/colt5_bench use it.
#pragma once

#include <doctest/doctest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>

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

}  // namespace colt5::testing
