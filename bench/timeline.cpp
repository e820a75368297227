// CUPTI activity recording for bench_timeline (see timeline.h).
#include "bench/timeline.h"

#include <cupti.h>
#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>

#include "core/error.h"

namespace colt5::bench {

namespace {

void check(CUptiResult r, const char* what) {
  if (r == CUPTI_SUCCESS) return;
  const char* s = "?";
  cuptiGetResultString(r, &s);
  throw Error(std::string("CUPTI: ") + what + " failed: " + s);
}

// CUPTI hands records over in buffers it asks for and gives back from its own threads; the
// records go to the one Timeline that is recording (at most one exists: the kinds are global).
std::vector<Activity>* g_sink = nullptr;
constexpr size_t kBufferBytes = 8 << 20;

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = kBufferBytes;
  *max_records = 0;  // as many as fit
}

std::string memcpy_name(uint8_t kind) {
  switch (kind) {
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOD: return "memcpy HtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOH: return "memcpy DtoH";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOD: return "memcpy DtoD";
    default: return "memcpy (other)";
  }
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  CUpti_Activity* rec = nullptr;
  while (g_sink && cuptiActivityGetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS) {
    switch (rec->kind) {
      case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL:
      case CUPTI_ACTIVITY_KIND_KERNEL: {
        const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(rec);
        g_sink->push_back({k->name ? k->name : "?", k->start, k->end});
        break;
      }
      case CUPTI_ACTIVITY_KIND_MEMCPY: {
        const auto* m = reinterpret_cast<const CUpti_ActivityMemcpy6*>(rec);
        g_sink->push_back({memcpy_name(m->copyKind), m->start, m->end});
        break;
      }
      case CUPTI_ACTIVITY_KIND_MEMSET: {
        const auto* m = reinterpret_cast<const CUpti_ActivityMemset4*>(rec);
        g_sink->push_back({"memset", m->start, m->end});
        break;
      }
      default: break;
    }
  }
  std::free(buffer);
}

// "void colt5::cuda::(anonymous namespace)::binary_kernel<...>(...)" -> without the argument list
// and return type, short enough for a table.
std::string short_name(const std::string& mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> d(abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status), std::free);
  std::string s = status == 0 && d ? d.get() : mangled;
  // Drop the parameter list: the last top-level '(' .. ')'.
  int depth = 0;
  for (size_t i = s.size(); i-- > 0;) {
    if (s[i] == ')') ++depth;
    if (s[i] == '(' && --depth == 0) {
      s.resize(i);
      break;
    }
  }
  if (s.rfind("void ", 0) == 0) s = s.substr(5);
  for (const std::string prefix : {"colt5::cuda::(anonymous namespace)::", "colt5::cuda::"}) {
    for (size_t p; (p = s.find(prefix)) != std::string::npos;) s.erase(p, prefix.size());
  }
  return s.size() > 110 ? s.substr(0, 107) + "..." : s;
}

}  // namespace

Timeline::Timeline() {
  COLT5_CHECK(g_sink == nullptr, "Timeline: another Timeline is recording");
  check(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed), "cuptiActivityRegisterCallbacks");
  check(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "enabling kernel records");
  check(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY), "enabling memcpy records");
  check(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMSET), "enabling memset records");
  g_sink = &acts_;
}

Timeline::~Timeline() {
  cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
  cuptiActivityDisable(CUPTI_ACTIVITY_KIND_MEMCPY);
  cuptiActivityDisable(CUPTI_ACTIVITY_KIND_MEMSET);
  g_sink = nullptr;
}

void Timeline::start() {
  check(cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED), "cuptiActivityFlushAll");
  acts_.clear();
  check(cuptiGetTimestamp(&t0_), "cuptiGetTimestamp");
}

void Timeline::stop() {
  check(cuptiGetTimestamp(&t1_), "cuptiGetTimestamp");
  check(cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED), "cuptiActivityFlushAll");
}

TimelineSummary Timeline::summary(double gap_threshold_us) const {
  TimelineSummary s;
  s.span_ms = double(t1_ - t0_) * 1e-6;
  std::vector<std::pair<uint64_t, uint64_t>> iv;
  std::map<std::string, TimelineSummary::Kernel> groups;
  for (const Activity& a : acts_) {
    const uint64_t b = std::max(a.start_ns, t0_), e = std::min(a.end_ns, t1_);
    if (e <= b) continue;  // outside the recorded span (an earlier call's tail)
    iv.emplace_back(b, e);
    TimelineSummary::Kernel& k = groups[a.name];
    k.calls += 1;
    k.total_ms += double(e - b) * 1e-6;
  }
  s.activities = int64_t(iv.size());
  std::sort(iv.begin(), iv.end());
  // Sweep the sorted intervals, merging overlaps; what lies between merged pieces (and between
  // t0 and the first, the last and t1) is idle.
  uint64_t cur_b = t0_, cur_e = t0_, busy = 0;
  auto idle = [&](uint64_t from, uint64_t to) {
    if (to <= from) return;
    const double us = double(to - from) * 1e-3;
    if (us > gap_threshold_us) {
      s.gaps += 1;
      s.gap_ms += us * 1e-3;
      s.largest_gap_us = std::max(s.largest_gap_us, us);
    }
  };
  for (const auto& [b, e] : iv) {
    if (b > cur_e) {
      busy += cur_e - cur_b;
      idle(cur_e, b);
      cur_b = b;
      cur_e = e;
    } else {
      cur_e = std::max(cur_e, e);
    }
  }
  busy += cur_e - cur_b;
  idle(cur_e, t1_);
  s.busy_ms = double(busy) * 1e-6;
  s.busy_fraction = s.span_ms > 0 ? s.busy_ms / s.span_ms : 0;
  // Group by the short name (template instances of one kernel stay apart: their arguments differ).
  std::map<std::string, TimelineSummary::Kernel> named;
  for (auto& [name, k] : groups) {
    TimelineSummary::Kernel& g = named[short_name(name)];
    g.name = short_name(name);
    g.calls += k.calls;
    g.total_ms += k.total_ms;
  }
  for (auto& [_, k] : named) s.by_name.push_back(k);
  std::sort(s.by_name.begin(), s.by_name.end(), [](const auto& a, const auto& b) { return a.total_ms > b.total_ms; });
  return s;
}

}  // namespace colt5::bench
