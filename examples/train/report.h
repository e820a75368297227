// What examples/train shows and writes: the progress line, the loss CSV and the SVG plot.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "trainer.h"

namespace colt5::train {

// "1h02m", "3m07s", "12s"
std::string format_duration(double seconds);

// The main() of the training programs: returns run(argc, argv), or prints
// "<program>: error: <message>" (with a hint when the GPU ran out of memory) and returns 1.
int guarded_main(const char* program, int (*run)(int, char**), int argc, char** argv);

// One progress line per step:
//   step  120/1500 [#####.........] loss 2.4312  gnorm 1.53  lr 2.95e-03  65.3 ms/step  31.4k tok/s  gpu 12.3 MiB peak  ETA 1m32s
// On a terminal the line is redrawn in place every step (a live bar); otherwise a plain line is
// printed every log_every steps and on the last step. ms/step and tokens/s are smoothed over
// recent steps; the ETA uses the smoothed step time. gpu is the allocator's peak of bytes held
// by tensors since the start (omitted on the CPU).
class Progress {
public:
  Progress(std::FILE* out, int64_t total_steps, bool live, int64_t log_every, bool show_gpu_memory);
  void update(const StepStats& s, size_t gpu_bytes = 0);
  // Print a line of its own (an evaluation, a checkpoint), keeping the live bar intact.
  void message(const std::string& line);
  void finish();  // end the live line

  std::string format_line(const StepStats& s, size_t gpu_bytes) const;  // (tests)

private:
  std::FILE* out_;
  int64_t total_, log_every_;
  bool live_, gpu_;
  bool bar_drawn_ = false;
  double ema_seconds_ = 0, ema_tokens_ = 0;
};

// step,train_loss,grad_norm,lr,val_loss,val_accuracy  (empty cells where not evaluated)
void write_history_csv(const std::string& path, const std::vector<HistoryRow>& rows);

// One panel of a plot: named series of (x, y) points, drawn as lines (or as dots).
struct Series {
  std::string name, color;
  std::vector<std::pair<double, double>> points;
  bool dots = false;
};
struct Panel {
  std::string title, y_label;
  std::vector<Series> series;
  std::vector<std::pair<std::string, double>> hlines;  // labelled horizontal reference lines
};
// Panels stacked vertically, a shared x axis label ("step"). Returns the SVG text.
std::string render_svg(const std::vector<Panel>& panels, const std::string& x_label);
// The loss plot of a run: training loss (raw and smoothed) with validation loss, plus the
// validation accuracy with the chance level when there is one.
void write_history_svg(const std::string& path, const std::vector<HistoryRow>& rows, const std::string& title,
                       double chance);

}  // namespace colt5::train
