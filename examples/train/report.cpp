// Progress line, CSV and SVG of examples/train (see report.h).
#include "report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <new>
#include <string>

#include "core/error.h"
#include "core/format.h"
#include "nn/safetensors.h"

namespace colt5::train {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int64_t t = static_cast<int64_t>(std::llround(s));
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, (t % 3600) / 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

int guarded_main(const char* program, int (*run)(int, char**), int argc, char** argv) {
  // What a failed allocation means for the user: which memory, and which flags size it.
  auto oom_hint = [&](bool gpu) {
    std::fprintf(stderr, "%s: the model and batch do not fit in %s: lower --batch-size (and use --grad-accum for the "
                         "same effective batch), --seq-len, --dim or --depth\n",
                 program, gpu ? "the GPU's memory" : "the host's memory");
  };
  try {
    return run(argc, argv);
  } catch (const std::bad_alloc&) {
    std::fflush(stdout);
    std::fprintf(stderr, "\n%s: error: out of host memory\n", program);
    oom_hint(false);
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "\n%s: error: %s\n", program, e.what());
    const std::string what = e.what();
    if (what.find("out of memory") != std::string::npos) oom_hint(what.find("cuda:") != std::string::npos);
    return 1;
  }
}

namespace {

std::string si(double v) {  // 31400 -> "31.4k"
  if (v >= 1e6) return fmt::format("{:.2f}M", v / 1e6);
  if (v >= 1e3) return fmt::format("{:.1f}k", v / 1e3);
  return fmt::format("{:.0f}", v);
}

std::string bar(int64_t done, int64_t total, int width) {
  const int filled =
      std::clamp(total > 0 ? static_cast<int>(static_cast<double>(done) * width / static_cast<double>(total)) : 0, 0, width);
  std::string s(static_cast<size_t>(width) + 2, '.');
  s.front() = '[';
  s.back() = ']';
  std::fill_n(s.begin() + 1, filled, '#');
  return s;
}

}  // namespace

Progress::Progress(std::FILE* out, int64_t total_steps, bool live, int64_t log_every, bool show_gpu_memory)
    : out_(out), total_(total_steps), log_every_(log_every), live_(live), gpu_(show_gpu_memory) {
  if (log_every_ <= 0) log_every_ = std::max<int64_t>(1, total_steps / 100);
}

std::string Progress::format_line(const StepStats& s, size_t gpu_bytes) const {
  const double sec = ema_seconds_ > 0 ? ema_seconds_ : s.seconds;
  const double tok = ema_tokens_ > 0 ? ema_tokens_ : static_cast<double>(s.tokens);
  const int width = static_cast<int>(std::to_string(total_).size());
  std::string line = fmt::format("step {:>{}}/{} {} loss {:.4f}  gnorm {:.2f}  lr {:.2e}  {:.1f} ms/step  {} tok/s",
                                 s.step, width, total_, bar(s.step, total_, 20), s.loss, s.grad_norm, s.lr, sec * 1e3,
                                 si(sec > 0 ? tok / sec : 0));
  if (gpu_) line += fmt::format("  gpu {:.1f} MiB peak", static_cast<double>(gpu_bytes) / (1 << 20));
  line += "  ETA " + format_duration(sec * static_cast<double>(total_ - s.step));
  return line;
}

void Progress::update(const StepStats& s, size_t gpu_bytes) {
  // Exponential moving average over about ten steps: the first step, which pays for warm-up
  // (allocator, cuBLAS handles), fades out of ms/step and the ETA within a few tens of steps.
  const double a = 0.1;
  ema_seconds_ = ema_seconds_ == 0 ? s.seconds : (1 - a) * ema_seconds_ + a * s.seconds;
  ema_tokens_ = ema_tokens_ == 0 ? static_cast<double>(s.tokens) : (1 - a) * ema_tokens_ + a * static_cast<double>(s.tokens);
  const std::string line = format_line(s, gpu_bytes);
  if (live_) {
    std::fprintf(out_, "\r\033[2K%s", line.c_str());
    bar_drawn_ = true;
  } else if (s.step % log_every_ == 0 || s.step == total_ || s.step == 1) {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  std::fflush(out_);
}

void Progress::message(const std::string& line) {
  if (live_ && bar_drawn_) std::fprintf(out_, "\r\033[2K");
  std::fprintf(out_, "%s\n", line.c_str());
  bar_drawn_ = false;
  std::fflush(out_);
}

void Progress::finish() {
  if (live_ && bar_drawn_) std::fprintf(out_, "\n");
  bar_drawn_ = false;
  std::fflush(out_);
}

// ---------------------------------------------------------------------------------------------
// CSV

void write_history_csv(const std::string& path, const std::vector<HistoryRow>& rows) {
  std::string csv = "step,train_loss,grad_norm,lr,val_loss,val_accuracy\n";
  for (const auto& r : rows)
    csv += fmt::format("{},{:.6g},{:.6g},{:.6g},{},{}\n", r.step, r.train_loss, r.grad_norm, r.lr,
                       r.val_loss ? fmt::format("{:.6g}", *r.val_loss) : "",
                       r.val_accuracy ? fmt::format("{:.6g}", *r.val_accuracy) : "");
  nn::write_file_atomically(path, csv, "write_history_csv");
}

// ---------------------------------------------------------------------------------------------
// SVG

namespace {

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

// About five round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten).
std::vector<double> ticks(double lo, double hi) {
  const double span = hi - lo;
  const double raw = span / 5;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
  std::vector<double> t;
  for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step) t.push_back(std::abs(v) < 1e-12 * step ? 0 : v);
  return t;
}

}  // namespace

std::string render_svg(const std::vector<Panel>& panels, const std::string& x_label) {
  const double W = 760, ph = 260, left = 70, right = 170, top = 34, bottom = 30, gap = 24;
  const double H = static_cast<double>(panels.size()) * (ph + top + bottom) + gap;
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      W, H);
  double y0 = 0;
  for (const Panel& p : panels) {
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (const auto& s : p.series)
      for (auto [x, y] : s.points)
        if (std::isfinite(x) && std::isfinite(y)) xmin = std::min(xmin, x), xmax = std::max(xmax, x), ymin = std::min(ymin, y), ymax = std::max(ymax, y);
    for (auto& [label, v] : p.hlines) ymin = std::min(ymin, v), ymax = std::max(ymax, v);
    if (!std::isfinite(xmin)) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
    if (xmax == xmin) xmax = xmin + 1;
    if (ymax == ymin) ymax = ymin + 1;
    const double pad = 0.05 * (ymax - ymin);
    ymin -= pad, ymax += pad;
    const double px0 = left, px1 = W - right, py0 = y0 + top, py1 = y0 + top + ph;
    auto X = [&](double x) { return px0 + (x - xmin) / (xmax - xmin) * (px1 - px0); };
    auto Y = [&](double y) { return py1 - (y - ymin) / (ymax - ymin) * (py1 - py0); };

    svg += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"14\" font-weight=\"bold\">{}</text>\n", px0, py0 - 12,
                       xml_escape(p.title));
    for (double t : ticks(ymin, ymax))
      svg += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e5e5e5\"/>"
                         "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{:g}</text>\n",
                         px0, Y(t), px1, Y(t), px0 - 6, Y(t) + 4, t);
    for (double t : ticks(xmin, xmax))
      svg += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e5e5e5\"/>"
                         "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{:g}</text>\n",
                         X(t), py0, X(t), py1, X(t), py1 + 16, t);
    svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n", px0, py0,
                       px1 - px0, ph);
    svg += fmt::format("<text transform=\"translate({:.1f},{:.1f}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
                       px0 - 50, (py0 + py1) / 2, xml_escape(p.y_label));
    double ly = py0 + 8;
    for (auto& [label, v] : p.hlines) {
      svg += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#888\" "
                         "stroke-dasharray=\"5,4\"/>\n",
                         px0, Y(v), px1, Y(v));
      svg += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#888\" "
                         "stroke-dasharray=\"5,4\"/><text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n",
                         px1 + 10, ly, px1 + 30, ly, px1 + 36, ly + 4, xml_escape(label));
      ly += 18;
    }
    for (const Series& s : p.series) {
      std::string pts;
      for (auto [x, y] : s.points)
        if (std::isfinite(x) && std::isfinite(y)) {
          if (s.dots)
            svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>\n", X(x), Y(y), s.color);
          else
            pts += fmt::format("{:.1f},{:.1f} ", X(x), Y(y));
        }
      if (!s.dots && !pts.empty())
        svg += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>\n", s.color, pts);
      svg += s.dots ? fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>", px1 + 20, ly, s.color)
                    : fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" "
                                  "stroke-width=\"2\"/>",
                                  px1 + 10, ly, px1 + 30, ly, s.color);
      svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", px1 + 36, ly + 4, xml_escape(s.name));
      ly += 18;
    }
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", (px0 + px1) / 2, py1 + 28,
                       xml_escape(x_label));
    y0 += ph + top + bottom + gap / static_cast<double>(panels.size());
  }
  return svg + "</svg>\n";
}

void write_history_svg(const std::string& path, const std::vector<HistoryRow>& rows, const std::string& title,
                       double chance) {
  Series raw{"train loss", "#b8c7e0", {}, false}, smooth{"train loss (smoothed)", "#1f4e9c", {}, false},
      val{"validation loss", "#d1495b", {}, true}, acc{"validation accuracy", "#2a9d5c", {}, true};
  double ema = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    ema = i == 0 ? r.train_loss : 0.95 * ema + 0.05 * r.train_loss;
    raw.points.emplace_back(static_cast<double>(r.step), r.train_loss);
    smooth.points.emplace_back(static_cast<double>(r.step), ema);
    if (r.val_loss) val.points.emplace_back(static_cast<double>(r.step), *r.val_loss);
    if (r.val_accuracy) acc.points.emplace_back(static_cast<double>(r.step), *r.val_accuracy);
  }
  std::vector<Panel> panels{{title, "cross entropy (nats)", {raw, smooth, val}, {}}};
  if (!acc.points.empty()) {
    acc.dots = false;
    panels.push_back({"validation accuracy", "accuracy", {acc}, {}});
    if (chance > 0) panels.back().hlines.push_back({"chance", chance});
  }
  nn::write_file_atomically(path, render_svg(panels, "step"), "write_history_svg");
}

}  // namespace colt5::train
