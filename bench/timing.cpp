// Timing and memory readings of colt5_bench (see timing.h).
#include "bench/timing.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/backend.h"
#include "core/error.h"

#ifdef COLT5_HAVE_CUDA
#include <cuda_runtime.h>

#include "cuda/check.h"
#include "cuda/context.h"
#endif

namespace colt5::bench {

Device device_from_flag(const std::string& name) {
  if (name == "cuda") {
    COLT5_CHECK(cuda_is_available(), "flag --device cuda: no CUDA device is available");
    return cuda_device(0);
  }
  COLT5_CHECK(name == "cpu" || name == "auto", "flag --device: expected auto, cpu or cuda, got '", name, "'");
  return name == "auto" && cuda_is_available() ? cuda_device(0) : kCPU;
}

namespace {

void summarise(Timing& t) {
  std::vector<double> s = t.times_ms;
  std::sort(s.begin(), s.end());
  t.min_ms = s.front();
  t.max_ms = s.back();
  // The median of an even count is the mean of the two middle times (as Python's statistics.median).
  const size_t n = s.size();
  t.median_ms = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

#ifdef COLT5_HAVE_CUDA
// Events on colt5's stream of the device: every kernel and copy of the call runs there, so the
// pair brackets the call's device work whatever the host does in between.
std::vector<double> time_on_gpu(Device device, const std::function<void()>& call, int reps) {
  cudaStream_t s = cuda::stream(device.index);
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    CUDA_CHECK(cudaEventRecord(start, s));
    call();
    CUDA_CHECK(cudaEventRecord(stop, s));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float t = 0;
    CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
    ms.push_back(t);
  }
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  return ms;
}
#endif

std::vector<double> time_on_cpu(const std::function<void()>& call, int reps) {
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    call();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return ms;
}

// A "Key:   123 kB" line of /proc/self/status, in bytes.
size_t status_kb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(f, line))
    if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':') return std::stoull(line.substr(n + 1)) * 1024;
  return 0;
}

}  // namespace

Timing time_calls(Device device, const std::function<void()>& call, int warmup, int reps) {
  COLT5_CHECK(reps >= 1, "time_calls: argument 'reps' expected >= 1, got ", reps);
  COLT5_CHECK(warmup >= 0, "time_calls: argument 'warmup' expected >= 0, got ", warmup);
  synchronize(device);
  reset_peak_memory(device);
  for (int i = 0; i < warmup; ++i) call();
  synchronize(device);
  Timing t;
#ifdef COLT5_HAVE_CUDA
  if (device.is_cuda()) t.times_ms = time_on_gpu(device, call, reps);
#endif
  if (!device.is_cuda()) t.times_ms = time_on_cpu(call, reps);
  COLT5_CHECK(!t.times_ms.empty(), "time_calls: device ", device, " is not supported by this build");
  t.alloc_peak_bytes = max_memory_allocated(device);
  summarise(t);
  return t;
}

size_t current_rss_bytes() { return status_kb("VmRSS"); }
size_t peak_rss_bytes() { return status_kb("VmHWM"); }

bool reset_peak_rss() {
  // Writing 5 to clear_refs resets the peak resident set size to the current one (Linux >= 4.0).
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

std::string run_isolated(const std::function<std::string()>& body) {
  int fds[2];
  COLT5_CHECK(pipe(fds) == 0, "run_isolated: pipe() failed: ", std::strerror(errno));
  std::fflush(nullptr);
  const pid_t pid = fork();
  COLT5_CHECK(pid >= 0, "run_isolated: fork() failed: ", std::strerror(errno));
  if (pid == 0) {
    close(fds[0]);
    std::string out;
    int code = 0;
    try {
      out = body();
    } catch (const std::exception& e) {
      out = e.what();
      code = 3;
    }
    for (size_t done = 0; done < out.size();) {
      const ssize_t w = write(fds[1], out.data() + done, out.size() - done);
      if (w <= 0) break;
      done += static_cast<size_t>(w);
    }
    close(fds[1]);
    std::fflush(nullptr);
    _exit(code);  // no atexit handlers, no destructors of the parent's statics
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t r; (r = read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(r));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) fail(str("the child process died of signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)), ")"));
  COLT5_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, out.empty() ? std::string("the child process failed") : out);
  return out;
}

}  // namespace colt5::bench
