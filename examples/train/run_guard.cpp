// OutDirLock and StopSignals (see run_guard.h).
#include "run_guard.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace colt5::train {

// ---------------------------------------------------------------------------------------------
// OutDirLock

OutDirLock::OutDirLock(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  COLT5_CHECK(!ec, "flag --out: cannot create the folder '", dir, "': ", ec.message());
  const std::string path = dir + "/.train.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  COLT5_CHECK(fd_ >= 0, "flag --out: cannot open the lock file '", path, "': ", std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char pid[32] = {};
    const ssize_t n = ::pread(fd_, pid, sizeof pid - 1, 0);
    ::close(fd_);
    fd_ = -1;
    COLT5_CHECK(err != EWOULDBLOCK, "flag --out: another train (pid ", n > 0 ? std::string(pid, size_t(n)) : "unknown",
                ") is writing to '", dir, "'; wait for it to finish or give another --out");
    fail(str("flag --out: cannot lock '", path, "': ", std::strerror(err)));
  }
  // Our pid, for the message of a second run (advisory: the lock itself is what counts).
  const std::string me = std::to_string(::getpid());
  if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, me.data(), me.size(), 0);
}

OutDirLock::~OutDirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock; the file stays (removing it would race a new run)
}

// ---------------------------------------------------------------------------------------------
// StopSignals

namespace {

volatile std::sig_atomic_t g_stop = 0;
struct sigaction g_old_int, g_old_term;

extern "C" void on_stop_signal(int sig) {
  if (g_stop != 0) {  // the second one: the default action, now
    std::signal(sig, SIG_DFL);
    std::raise(sig);  // delivered when this handler returns (the signal is blocked inside it)
    return;
  }
  g_stop = sig;
  static const char msg[] =
      "\ntrain: stopping after the step in progress and writing a checkpoint (press Ctrl-C again to quit at once)\n";
  (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);  // async-signal-safe, unlike stdio
}

}  // namespace

StopSignals::StopSignals() {
  g_stop = 0;
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // reads and writes in progress carry on
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
}

StopSignals::~StopSignals() {
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
}

int StopSignals::requested() { return g_stop; }

}  // namespace colt5::train
