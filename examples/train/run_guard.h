// What keeps a training run's output safe: one writer per output folder, and a clean stop on
// Ctrl-C or SIGTERM.
//
// OutDirLock: an exclusive lock (flock) on <out>/.train.lock, held for the life of the object;
// a second train on the same --out is refused with the first one's pid, so two runs can never
// interleave their checkpoints. The lock goes with the process, also when it is killed.
//
// StopSignals: while an instance lives, the first SIGINT or SIGTERM only sets a flag (and says
// so on stderr) — the training loop finishes the step in progress, writes its checkpoint and
// exits; a second SIGINT or SIGTERM ends the program at once with the default action. The
// previous handlers are restored when the instance goes away.
#pragma once

#include <csignal>
#include <string>

namespace colt5::train {

class OutDirLock {
public:
  // Creates `dir` if needed and takes the lock; throws colt5::Error naming --out when another
  // process holds it or the folder cannot be used.
  explicit OutDirLock(const std::string& dir);
  ~OutDirLock();
  OutDirLock(const OutDirLock&) = delete;
  OutDirLock& operator=(const OutDirLock&) = delete;

private:
  int fd_ = -1;
};

class StopSignals {
public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // 0 while no stop was asked for, else the signal's number (SIGINT, SIGTERM).
  static int requested();
};

}  // namespace colt5::train
