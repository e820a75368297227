// train: the main program of colt5. Trains a CoLT5 model and shows what routing contributes.
//
//   build/examples/train                        synthetic associative recall (GPU if present)
//   build/examples/train --data FILE            a byte-level language model on a text file
//   build/examples/train --resume runs/colt5/checkpoint.safetensors --steps 3000
//   build/examples/train --help                 every flag
//
// Writes to --out (default runs/colt5): checkpoint.safetensors (model, optimizer state, config,
// step and history; saved every --checkpoint-every steps, every --checkpoint-minutes (5) of wall
// time, at the end, and on Ctrl-C / SIGTERM after the step in progress), loss.csv and loss.svg.
// One train at a time per --out (a lock file), and a new run does not replace another run's
// checkpoint unless --overwrite is given.
// At the end it evaluates the same model with its heavy branches switched off, so the effect
// of routing is visible next to the routed accuracy (or loss).
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <string>

#include <CLI/CLI.hpp>

#include "core/backend.h"
#include "core/format.h"
#include "report.h"
#include "run_guard.h"
#include "trainer.h"

using namespace colt5;
using namespace colt5::train;

namespace {

const char* const kAbout =
    "colt5 train: train a CoLT5 model (routed light + heavy attention and feedforward).\n"
    "Without flags: the synthetic associative-recall task on the GPU if there is one, else a\n"
    "CPU configuration of about two minutes. --data FILE trains a byte-level language model.";

// The flags, bound to `c`. Only the flags given on the command line change `c`.
void add_flags(CLI::App& app, TrainConfig& c, std::string& resume, bool& quiet_bar, bool& overwrite,
               std::string& cuda_graph) {
  app.add_option("--task", c.task, "recall (synthetic associative recall, encoder + classifier) or text (LM)")
      ->check(CLI::IsMember({"recall", "text"}));
  app.add_option("--data", c.data_path, "train a byte-level language model on this text file (implies --task text)");
  app.add_option("--device", c.device, "auto (the GPU when there is one), cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_option("--steps", c.steps, "optimizer steps in total (a resumed run continues up to this)");
  app.add_option("--batch-size", c.batch_size, "sequences per micro-batch");
  app.add_option("--grad-accum", c.grad_accum, "micro-batches per optimizer step (gradient accumulation)");
  app.add_option("--lr", c.lr, "peak learning rate (AdamW)");
  app.add_option("--min-lr", c.min_lr, "learning rate at the end of the cosine decay");
  app.add_option("--warmup", c.warmup, "linear warm-up steps (capped at --steps)");
  app.add_option("--weight-decay", c.weight_decay, "AdamW weight decay (not applied to norms, biases, null and routing tokens)");
  app.add_option("--beta1", c.beta1, "AdamW beta1");
  app.add_option("--beta2", c.beta2, "AdamW beta2");
  app.add_option("--clip", c.clip, "clip the global gradient norm to this (0 = off)");
  app.add_option("--seed", c.seed, "seed of the initialisation and the data");
  app.add_option("--seq-len", c.seq_len, "sequence length (text: window; recall: whole sequence)");
  app.add_option("--val-fraction", c.val_fraction, "text: the fraction at the end of the file held out for validation");
  app.add_option("--pairs", c.recall.num_pairs, "recall: key/value pairs per sequence");
  app.add_option("--keys", c.recall.num_keys, "recall: key vocabulary");
  app.add_option("--values", c.recall.num_values, "recall: value vocabulary (chance = 1 / values)");
  app.add_option("--noise", c.recall.num_noise, "recall: noise vocabulary (the tokens between the pairs and the question)");
  app.add_option("--queries", c.recall.num_queries, "recall: questions at the end of each sequence (each one a label)");
  app.add_option("--dim", c.model.dim, "model width");
  app.add_option("--depth", c.model.depth, "number of blocks");
  app.add_option("--light-window", c.model.light_window_size, "light (local) attention window");
  app.add_option("--heavy-window", c.model.heavy_window_size, "text: heavy attention window (queries per window)");
  app.add_option("--heavy-q", c.model.num_heavy_tokens_q, "recall: routed heavy queries");
  app.add_option("--heavy-kv", c.model.num_heavy_tokens_kv, "routed heavy keys/values (text: per window)");
  app.add_option("--heavy-ff", c.model.num_heavy_ff_tokens, "routed heavy feedforward tokens (text: per --ff-window)");
  app.add_option("--ff-window", c.model.ff_window_size, "text: window of the causal feedforward routing");
  app.add_option("--heads", c.model.light_heads, "light attention heads");
  app.add_option("--heavy-heads", c.model.heavy_heads, "heavy attention heads");
  app.add_option("--dim-head", c.model.light_dim_head, "light attention head width");
  app.add_option("--heavy-dim-head", c.model.heavy_dim_head, "heavy attention head width");
  app.add_option("--pool", c.model.pool, "recall: what the classifier reads, last (the last position) or mean (all)");
  app.add_option("--light-rotary", c.model.light_rotary,
                 "rotary positions in the light attention: true (the presets) or false (CoLT5's light branch)");
  app.add_option("--out", c.out_dir, "output directory (checkpoint.safetensors, loss.csv, loss.svg)");
  app.add_option("--eval-every", c.eval_every, "evaluate every N steps (0 = only at the end)");
  app.add_option("--eval-batches", c.eval_batches, "validation batches per evaluation");
  app.add_option("--checkpoint-every", c.checkpoint_every, "save a checkpoint every N steps (0 = by time only)");
  app.add_option("--checkpoint-minutes", c.checkpoint_minutes,
                 "also save when this many minutes have passed since the last save (0 = off)");
  app.add_option("--log-every", c.log_every, "without a terminal: a progress line every N steps (0 = about 100 lines)");
  app.add_option("--resume", resume, "continue from a checkpoint (model, task and optimizer settings come from it)");
  app.add_option("--precision", c.precision,
                 "fp32, or bf16: matrix products with bfloat16 operands and float32 accumulation (autocast); "
                 "weights, optimizer and the rest stay float32, a checkpoint resumes in either")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  app.add_option("--cuda-graph", cuda_graph,
                 "auto (on with a GPU), on or off: capture the training step as a CUDA graph after two warm-up steps "
                 "and replay it (the same losses, less host time per step)");
  app.add_flag("--no-bar", quiet_bar, "plain progress lines even on a terminal");
  app.add_flag("--overwrite", overwrite, "start a new run in an --out that holds another run's checkpoint (replacing it)");
}

std::string eval_text(const EvalResult& r) {
  std::string s = fmt::format("loss {:.4f}", r.loss);
  if (r.accuracy) s += fmt::format("  accuracy {:.1f}%", 100 * *r.accuracy);
  else s += fmt::format("  ({:.3f} bits/byte)", r.loss / std::log(2.0));
  return s;
}

int run(int argc, char** argv) {
  // Pass 1: the flags over the preset of the chosen task and device.
  TrainConfig probe;
  std::string resume;
  bool no_bar = false, overwrite = false;
  std::string cuda_graph = "auto";
  {
    CLI::App app{kAbout};
    app.failure_message(CLI::FailureMessage::help);  // a bad flag prints the usage
    add_flags(app, probe, resume, no_bar, overwrite, cuda_graph);
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return app.exit(e);  // --help prints the flags and exits 0; a bad flag exits non-zero
    }
  }
  const std::string task = !probe.data_path.empty() ? "text" : probe.task;
  const bool gpu = resolve_device(probe.device).type == DeviceType::CUDA;
  TrainConfig cfg = preset(task, gpu);
  if (!resume.empty()) cfg = Trainer::read_checkpoint_config(resume);
  const TrainConfig base = cfg;
  // Pass 2: the same flags over the preset (or the checkpoint's config): given flags win.
  {
    CLI::App app{kAbout};
    add_flags(app, cfg, resume, no_bar, overwrite, cuda_graph);
    app.parse(argc, argv);  // parsed once already: cannot fail differently
  }
  if (!cfg.data_path.empty()) cfg.task = "text";
  cfg.derive();
  cfg.validate();
  COLT5_CHECK(cuda_graph == "auto" || cuda_graph == "on" || cuda_graph == "off",
              "flag --cuda-graph: expected auto, on or off, got \"", cuda_graph, "\"");
  if (!resume.empty()) {
    const std::string diff = cfg.resume_mismatch(base);
    COLT5_CHECK(diff.empty(), "flag --resume: ", diff, "; a resumed run keeps the task, data, model and optimizer ",
                "settings of its checkpoint (only --steps, --device, --out and the logging flags may change)");
  }

  if (!resume.empty() && cfg.task == "text" && !std::filesystem::exists(cfg.data_path))
    fail(str("flag --resume: the checkpoint's data file '", cfg.data_path, "' is not there any more; give --data FILE ",
             "with the same contents (", cfg.data_size, " bytes, hash ", cfg.data_hash, ")"));

  // Absolute, like the data path, so that a resumed run writes where the run was, wherever it is
  // started from.
  cfg.out_dir = std::filesystem::absolute(cfg.out_dir).lexically_normal().string();
  Trainer t(cfg);
  t.set_cuda_graph(cuda_graph == "on" || (cuda_graph == "auto" && t.device().is_cuda()));
  if (!resume.empty()) {
    t.load_checkpoint(resume);
    COLT5_CHECK(t.step() < cfg.steps, "flag --steps: the checkpoint has done ", t.step(), " steps already; give --steps > ",
                t.step(), " to continue");
  }
  // One run per output folder (taken once the data and the model are known to be usable, so that
  // a run refused for them leaves no folder behind), and never over another run's checkpoint
  // without being asked.
  const OutDirLock lock(cfg.out_dir);
  const std::string ckpt = cfg.out_dir + "/checkpoint.safetensors";
  std::error_code ec;
  const bool resuming_here = !resume.empty() && std::filesystem::equivalent(resume, ckpt, ec);
  if (std::filesystem::exists(ckpt) && !resuming_here && !overwrite)
    fail(str("flag --out: '", cfg.out_dir, "' already holds a run's checkpoint (", ckpt, "); continue it with --resume ",
             ckpt, ", replace it with --overwrite, or give another --out"));

  const bool on_gpu = t.device().type == DeviceType::CUDA;

  const auto& m = cfg.model;
  fmt::print("colt5 train: task {}, device {}, {} parameters\n", cfg.task, t.device().name(), t.model().num_parameters());
  if (cfg.task == "recall")
    fmt::print("  associative recall: {} tokens, {} key/value pairs at the start, {} at the end; {} values "
               "(chance {:.1f}%)\n",
               cfg.seq_len, cfg.recall.num_pairs,
               cfg.recall.num_queries == 1 ? std::string("query") : fmt::format("{} queries", cfg.recall.num_queries),
               cfg.recall.num_values, 100 * t.chance());
  else
    fmt::print("  text: {} ({} train / {} validation bytes), windows of {} bytes\n", cfg.data_path,
               t.text_data()->size(nn::Split::Train), t.text_data()->size(nn::Split::Val), cfg.seq_len);
  if (cfg.task == "recall")
    fmt::print("  model: {} x dim {}, light window {}{}, heavy {} q / {} kv / {} ff tokens", m.depth, m.dim,
               m.light_window_size, m.light_rotary ? " (rotary)" : "", m.num_heavy_tokens_q, m.num_heavy_tokens_kv,
               m.num_heavy_ff_tokens);
  else
    fmt::print("  model: {} x dim {}, causal light window {}{}, heavy windows of {} reading {} routed kv from their past, "
               "heavy ff for up to {} of every {} tokens",
               m.depth, m.dim, m.light_window_size, m.light_rotary ? " (rotary)" : "", m.heavy_window_size,
               m.num_heavy_tokens_kv, m.num_heavy_ff_tokens,
               m.ff_window_size);
  fmt::print("; AdamW lr {} -> {}, batch {} x {}\n", cfg.lr, cfg.min_lr, cfg.batch_size, cfg.grad_accum);
  if (!resume.empty()) fmt::print("  resumed from {} at step {}\n", resume, t.step());
  std::fflush(stdout);

  const bool live = !no_bar && isatty(fileno(stdout));
  Progress progress(stdout, cfg.steps, live, cfg.log_every, on_gpu);
  using Clock = std::chrono::steady_clock;
  auto last_save = Clock::now();
  auto save = [&] {
    t.save_checkpoint(ckpt);  // each file is written to a temporary and renamed into place
    write_history_csv(cfg.out_dir + "/loss.csv", t.history());
    write_history_svg(cfg.out_dir + "/loss.svg", t.history(), "colt5 " + cfg.task + ": loss", t.chance());
    last_save = Clock::now();
  };
  const StopSignals stop;  // Ctrl-C: finish the step, save, exit
  while (t.step() < cfg.steps) {
    const std::string graph_before = t.graph_status();
    const StepStats s = t.train_step();
    progress.update(s, on_gpu ? max_memory_allocated(t.device()) : 0);
    if (t.graph_status() != graph_before) progress.message("cuda graph: " + t.graph_status());
    const bool last = t.step() == cfg.steps;
    if (((cfg.eval_every > 0 && t.step() % cfg.eval_every == 0) || last) && !StopSignals::requested()) {
      const EvalResult r = t.evaluate();
      t.history().back().val_loss = r.loss;
      t.history().back().val_accuracy = r.accuracy;
      progress.message(fmt::format("eval step {}: {}", t.step(), eval_text(r)));
    }
    const double minutes = std::chrono::duration<double>(Clock::now() - last_save).count() / 60;
    if ((cfg.checkpoint_every > 0 && t.step() % cfg.checkpoint_every == 0) || last || StopSignals::requested() ||
        (cfg.checkpoint_minutes > 0 && minutes >= cfg.checkpoint_minutes))
      save();
    if (const int sig = StopSignals::requested()) {
      progress.finish();
      std::fflush(stdout);
      std::fprintf(stderr, "train: stopped by %s at step %lld of %lld; the checkpoint %s is complete.\n"
                           "  continue with: %s --resume %s\n",
                   sig == SIGINT ? "SIGINT (Ctrl-C)" : "SIGTERM", static_cast<long long>(t.step()),
                   static_cast<long long>(cfg.steps), ckpt.c_str(), argv[0], ckpt.c_str());
      return 128 + sig;
    }
  }
  progress.finish();

  // The ablation: the same weights, heavy branches off.
  const int64_t final_batches = std::max<int64_t>(cfg.eval_batches, 16);
  const EvalResult routed = t.evaluate(true, final_batches);
  if (const int sig = StopSignals::requested()) {  // the checkpoint of the last step is written
    std::fprintf(stderr, "train: stopped during the final evaluation; the checkpoint %s is complete\n", ckpt.c_str());
    return 128 + sig;
  }
  const EvalResult light = t.evaluate(false, final_batches);
  fmt::print("\nfinal evaluation ({} validation sequences):\n", routed.samples);
  fmt::print("  routed (light + heavy)  {}\n", eval_text(routed));
  fmt::print("  heavy branch off        {}\n", eval_text(light));
  if (routed.accuracy) fmt::print("  chance                  accuracy {:.1f}%\n", 100 * t.chance());
  const std::string shown = std::filesystem::path(cfg.out_dir).lexically_proximate(std::filesystem::current_path()).string();
  fmt::print("wrote {}/checkpoint.safetensors, {}/loss.csv, {}/loss.svg\n", shown, shown, shown);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return train::guarded_main("train", run, argc, argv); }
