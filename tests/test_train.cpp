// The training program (examples/train): loss falls in short CPU runs of both tasks, a resumed
// run is bit-identical to an uninterrupted one, checkpoints from another configuration or
// truncated / corrupted ones are refused with a clear error, settings out of range are rejected,
// and the program itself exits non-zero with a message (never a crash) on bad flags and files.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "autograd/ops.h"
#include "config.h"
#include "core/backend.h"
#include "nn/safetensors.h"
#include "report.h"
#include "tests/gpu/gpu.h"
#include "tests/run_program.h"
#include "tests/train_fixtures.h"
#include "trainer.h"

using namespace colt5;
using namespace colt5::train;
using doctest::Contains;

namespace {

double mean_loss(const std::vector<HistoryRow>& h, size_t begin, size_t end) {
  double s = 0;
  for (size_t i = begin; i < end; ++i) s += h[i].train_loss;
  return s / static_cast<double>(end - begin);
}

std::vector<char> bytes_of(const Tensor& t) {
  const Tensor c = t.to(kCPU).contiguous();
  const char* p = static_cast<const char*>(c.raw_data());
  return std::vector<char>(p, p + c.numel() * static_cast<int64_t>(dtype_size(c.dtype())));
}

// examples/train and examples/generate; $COLT5_TRAIN_EXE / $COLT5_GENERATE_EXE override the paths.
using testing::Run;
using testing::run_program;
using testing::text_file;
using testing::tiny_recall;
using testing::tiny_text;
Run run_train(const std::string& args) { return run_program("COLT5_TRAIN_EXE", COLT5_TRAIN_EXE, args); }
Run run_generate(const std::string& args) { return run_program("COLT5_GENERATE_EXE", COLT5_GENERATE_EXE, args); }

}  // namespace

TEST_CASE("train: the loss falls in a short CPU run (language model on a text file)") {
  const std::string data = text_file("fox.txt");
  Trainer t(tiny_text(data));
  const double before = t.evaluate().loss;
  while (t.step() < t.config().steps) t.train_step();
  const double after = t.evaluate().loss;
  const auto& h = t.history();
  INFO("validation loss " << before << " -> " << after);
  CHECK(after < 0.6 * before);                                  // ln 256 = 5.5 -> well below
  CHECK(mean_loss(h, 50, 60) < mean_loss(h, 0, 10) - 1.0);
  std::remove(data.c_str());
}

TEST_CASE("train: the loss falls in a short CPU run (recall task)") {
  TrainConfig c = tiny_recall("/tmp/colt5_test_train_fall");
  c.steps = 40;
  Trainer t(c);
  while (t.step() < c.steps) t.train_step();
  CHECK(mean_loss(t.history(), 30, 40) < mean_loss(t.history(), 0, 10));
}

TEST_CASE("train: a resumed CPU run is bit-identical to an uninterrupted one") {
  const std::string dir = "/tmp/colt5_test_train_resume";
  std::filesystem::create_directories(dir);
  for (int accum : {1, 2}) {
    CAPTURE(accum);
    TrainConfig c = tiny_recall(dir);
    c.grad_accum = accum;
    Trainer straight(c);
    while (straight.step() < c.steps) straight.train_step();

    Trainer first(c);
    for (int i = 0; i < 3; ++i) first.train_step();
    first.save_checkpoint(dir + "/ck.safetensors");
    Trainer resumed(c);
    resumed.load_checkpoint(dir + "/ck.safetensors");
    CHECK(resumed.step() == 3);
    while (resumed.step() < c.steps) resumed.train_step();

    const auto a = straight.model().named_parameters(), b = resumed.model().named_parameters();
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      CAPTURE(a[i].first);
      CHECK(bytes_of(a[i].second) == bytes_of(b[i].second));
    }
    REQUIRE(straight.history().size() == resumed.history().size());
    for (size_t i = 0; i < straight.history().size(); ++i)
      CHECK(std::memcmp(&straight.history()[i].train_loss, &resumed.history()[i].train_loss, sizeof(double)) == 0);
  }
}

TEST_CASE("train: checkpoints from another config, truncated or corrupted are refused") {
  const std::string dir = "/tmp/colt5_test_train_ckpt";
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/ck.safetensors";
  TrainConfig c = tiny_recall(dir);
  Trainer t(c);
  t.train_step();
  t.save_checkpoint(path);

  SUBCASE("another model config") {
    TrainConfig other = c;
    other.model.dim = 32;
    Trainer u(other);
    CHECK_THROWS_WITH_AS(u.load_checkpoint(path), Contains("comes from another configuration: flag --dim is 32 here but 16"),
                         Error);
  }
  SUBCASE("another optimizer setting") {
    TrainConfig other = c;
    other.lr = 0.5;
    Trainer u(other);
    CHECK_THROWS_WITH_AS(u.load_checkpoint(path), Contains("flag --lr is 0.5 here"), Error);
  }
  SUBCASE("truncated") {
    std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
    Trainer u(c);
    CHECK_THROWS_AS(u.load_checkpoint(path), Error);
    CHECK_THROWS_WITH_AS(Trainer::read_checkpoint_config(path), Contains(path.c_str()), Error);
  }
  SUBCASE("corrupted header") {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(12);
    f.write("\x01\x02\x03garbage", 10);
    f.close();
    CHECK_THROWS_WITH_AS(Trainer::read_checkpoint_config(path), Contains(path.c_str()), Error);
  }
  SUBCASE("not a training checkpoint") {
    nn::write_safetensors(path, {{"x", zeros({2})}});
    CHECK_THROWS_WITH_AS(Trainer::read_checkpoint_config(path), Contains("metadata entry 'colt5.format' is missing"),
                         Error);
  }
  SUBCASE("a recall checkpoint is not a language model") {
    TrainConfig got;
    auto m = Trainer::load_model(path, kCPU, &got);
    CHECK(got.model.kind == "encoder");
  }
  SUBCASE("missing") {
    CHECK_THROWS_WITH_AS(Trainer::read_checkpoint_config(dir + "/nope.safetensors"), Contains("nope.safetensors"),
                         Error);
  }
}

TEST_CASE("train: settings out of range are rejected naming the flag") {
  auto rejects = [](auto edit, const char* what) {
    TrainConfig c = tiny_recall("/tmp/colt5_test_train_flags");
    edit(c);
    CHECK_THROWS_WITH_AS(Trainer{c}, Contains(what), Error);
  };
  rejects([](TrainConfig& c) { c.steps = 0; }, "flag --steps: expected in [1, 1099511627776], got 0");
  rejects([](TrainConfig& c) { c.precision = "fp16"; }, "flag --precision: expected fp32 or bf16, got \"fp16\"");
  rejects([](TrainConfig& c) { c.lr = -1; }, "flag --lr: expected a finite value in (0, 1000], got -1");
  rejects([](TrainConfig& c) { c.batch_size = 0; }, "flag --batch-size: expected in [1, 65536], got 0");
  rejects([](TrainConfig& c) { c.grad_accum = 0; }, "flag --grad-accum: expected in [1, 65536]");
  rejects([](TrainConfig& c) { c.beta2 = 1.0; }, "flag --beta2");
  rejects([](TrainConfig& c) { c.recall.num_pairs = 20; }, "flag --pairs: expected in [1, 4], got 20");
  // Every flag that sizes memory has a stated limit, checked before anything is allocated.
  rejects([](TrainConfig& c) { c.seq_len = 10000000; }, "flag --seq-len: expected in [2, 1048576], got 10000000");
  rejects([](TrainConfig& c) { c.batch_size = 100000000; }, "flag --batch-size: expected in [1, 65536], got 100000000");
  rejects([](TrainConfig& c) { c.batch_size = 65536, c.seq_len = 1024; },
          "flags --batch-size and --seq-len: 65536 x 1024 = 67108864 tokens per micro-batch");
  rejects([](TrainConfig& c) { c.eval_batches = 1 << 20; }, "flag --eval-batches: expected in [1, 65536]");
  rejects([](TrainConfig& c) { c.model.dim = 1 << 20; }, "flag --dim: expected in [1, 16384]");
  rejects([](TrainConfig& c) { c.model.depth = 100000; }, "flag --depth: expected in [1, 256]");
  rejects([](TrainConfig& c) { c.recall.num_values = 1 << 20; }, "flag --values: expected in [2, 65536]");
  rejects([](TrainConfig& c) { c.model.dim = 16384, c.model.depth = 256; }, "parameters");
  // Routed-token counts above the sequence would fail deep inside a router: named here.
  rejects([](TrainConfig& c) { c.model.num_heavy_tokens_q = 1000; }, "flag --heavy-q: expected in [1, 24], got 1000");
  rejects([](TrainConfig& c) { c.model.num_heavy_tokens_kv = 25; }, "flag --heavy-kv: expected in [1, 24], got 25");
  rejects([](TrainConfig& c) { c.model.light_window_size = 100; }, "flag --light-window: expected in [2, 24]");
  // Non-finite numbers: NaN passes every comparison-based check unless finiteness is asked for.
  const double nan = std::nan(""), inf = std::numeric_limits<double>::infinity();
  rejects([nan](TrainConfig& c) { c.lr = nan; }, "flag --lr: expected a finite value");
  rejects([inf](TrainConfig& c) { c.lr = inf; }, "flag --lr: expected a finite value");
  rejects([nan](TrainConfig& c) { c.min_lr = nan; }, "flag --min-lr");
  rejects([inf](TrainConfig& c) { c.weight_decay = inf; }, "flag --weight-decay: expected a finite value");
  rejects([nan](TrainConfig& c) { c.beta1 = nan; }, "flag --beta1: expected a finite value");
  rejects([inf](TrainConfig& c) { c.clip = inf; }, "flag --clip: expected a finite value");
  rejects([nan](TrainConfig& c) { c.val_fraction = nan; }, "flag --val-fraction: expected a finite value");
  rejects([nan](TrainConfig& c) { c.checkpoint_minutes = nan; }, "flag --checkpoint-minutes: expected a finite value");
  rejects([](TrainConfig& c) { c.task = "text", c.data_path = "/nonexistent/x.txt"; }, "cannot open it");
  rejects([](TrainConfig& c) { c.task = "text", c.data_path = "x.txt", c.seq_len = 16, c.model.heavy_window_size = 16; },
          "flag --seq-len: the language model's heavy attention reads from earlier windows");
  if (!cuda_is_available())
    rejects([](TrainConfig& c) { c.device = "cuda"; }, "flag --device cuda: no CUDA device is available");
}

TEST_CASE("train: the config survives its JSON round trip") {
  const TrainConfig c = tiny_recall("/tmp/x");
  CHECK(TrainConfig::from_json(c.to_json()).to_json() == c.to_json());
  nlohmann::json j = c.to_json();
  j["stepz"] = 3;
  CHECK_THROWS_WITH_AS(TrainConfig::from_json(j), Contains("unknown key 'stepz'"), Error);
}

TEST_CASE("train: CSV, SVG and the progress line") {
  std::vector<HistoryRow> rows(3);
  for (int i = 0; i < 3; ++i) rows[i].step = i + 1, rows[i].train_loss = 3.0 - i, rows[i].lr = 1e-3;
  rows[2].val_loss = 1.5, rows[2].val_accuracy = 0.25;
  const std::string csv = "/tmp/colt5_test_train.csv", svg = "/tmp/colt5_test_train.svg";
  write_history_csv(csv, rows);
  std::ifstream f(csv);
  std::stringstream ss;
  ss << f.rdbuf();
  CHECK(ss.str() == "step,train_loss,grad_norm,lr,val_loss,val_accuracy\n1,3,0,0.001,,\n2,2,0,0.001,,\n"
                    "3,1,0,0.001,1.5,0.25\n");
  write_history_svg(svg, rows, "test", 0.1);
  std::ifstream g(svg);
  std::stringstream s2;
  s2 << g.rdbuf();
  CHECK(s2.str().rfind("<svg", 0) == 0);
  CHECK(s2.str().find("validation accuracy") != std::string::npos);
  CHECK(s2.str().find("chance") != std::string::npos);

  Progress p(stdout, 1500, false, 0, true);
  StepStats s;
  s.step = 120, s.loss = 2.4312, s.grad_norm = 1.53, s.lr = 2.95e-3, s.seconds = 0.0653, s.tokens = 2048;
  const std::string line = p.format_line(s, 12u << 20);
  CHECK(line == "step  120/1500 [#...................] loss 2.4312  gnorm 1.53  lr 2.95e-03  65.3 ms/step  "
                "31.4k tok/s  gpu 12.0 MiB peak  ETA 1m30s");
  CHECK(format_duration(3725) == "1h02m");
}

TEST_CASE("train program: bad flags and files exit non-zero with a message") {
  const Run help = run_train("--help");
  CHECK(help.status == 0);
  for (const char* flag : {"--data", "--steps", "--lr", "--batch-size", "--grad-accum", "--resume", "--out",
                           "--device", "--seed", "--checkpoint-every", "--eval-every", "--cuda-graph"})
    CHECK(help.output.find(flag) != std::string::npos);

  Run r = run_train("--steps 0");
  CHECK(r.status == 1);
  CHECK(r.output.find("train: error: flag --steps: expected in [1, 1099511627776], got 0") != std::string::npos);
  r = run_train("--lr -0.1");
  CHECK(r.status == 1);
  CHECK(r.output.find("flag --lr: expected a finite value in (0, 1000], got -0.1") != std::string::npos);
  r = run_train("--batch-size 0");
  CHECK(r.status == 1);
  r = run_train("--steps abc");
  CHECK(r.status != 0);
  CHECK(r.output.find("--steps") != std::string::npos);
  r = run_train("--data /nonexistent/colt5.txt");
  CHECK(r.status == 1);
  CHECK(r.output.find("cannot open it") != std::string::npos);
  r = run_train("--resume /nonexistent/ck.safetensors");
  CHECK(r.status == 1);
  CHECK(r.output.find("ck.safetensors") != std::string::npos);
  r = run_train("--device cpu --cuda-graph sometimes --steps 1 --out /tmp/colt5_test_train_flags");
  CHECK(r.status == 1);
  CHECK(r.output.find("flag --cuda-graph: expected auto, on or off, got \"sometimes\"") != std::string::npos);
  r = run_train("--device cpu --cuda-graph on --steps 1 --out /tmp/colt5_test_train_flags");
  CHECK(r.status == 1);
  CHECK(r.output.find("flag --cuda-graph: CUDA graphs need a GPU, and this run is on cpu") != std::string::npos);
  r = run_train("--no-such-flag");
  CHECK(r.status != 0);

  // A real (tiny) run, then a resume with a conflicting model flag, then one that continues.
  const std::string out = "/tmp/colt5_test_train_cli";
  std::filesystem::remove_all(out);  // a new run refuses an --out that holds another run's checkpoint
  const std::string small = "--device cpu --steps 3 --seq-len 24 --pairs 2 --keys 4 --values 4 --dim 16 --depth 1 "
                            "--light-window 4 --heavy-q 4 --heavy-kv 6 --heavy-ff 4 --heads 2 --dim-head 8 "
                            "--heavy-heads 2 --heavy-dim-head 8 --batch-size 4 --eval-batches 1 --out " + out;
  r = run_train(small);
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(std::filesystem::exists(out + "/checkpoint.safetensors"));
  CHECK(std::filesystem::exists(out + "/loss.csv"));
  CHECK(std::filesystem::exists(out + "/loss.svg"));
  r = run_train("--resume " + out + "/checkpoint.safetensors --dim 32 --steps 6 --out " + out);
  CHECK(r.status == 1);
  CHECK(r.output.find("flag --dim is 32 here but 16 in the checkpoint") != std::string::npos);
  r = run_train("--resume " + out + "/checkpoint.safetensors --steps 5 --device cpu --out " + out);
  CHECK(r.status == 0);
  CHECK(r.output.find("resumed from") != std::string::npos);
}

TEST_CASE("generate: samples from a text checkpoint, reproducibly; refuses other checkpoints") {
  const std::string data = text_file("gen.txt");
  const std::string out = "/tmp/colt5_test_generate";
  std::filesystem::remove_all(out);
  Run r = run_train("--device cpu --data " + data + " --steps 4 --seq-len 32 --dim 16 --depth 1 --light-window 8 "
                    "--heavy-window 8 --heavy-kv 4 --heavy-ff 2 --ff-window 8 --heads 2 --dim-head 8 --heavy-heads 2 "
                    "--heavy-dim-head 8 --batch-size 4 --eval-batches 1 --out " + out);
  INFO(r.output);
  REQUIRE(r.status == 0);
  const std::string ck = out + "/checkpoint.safetensors";
  const Run a = run_generate("--device cpu --checkpoint " + ck + " --prompt 'the quick' --length 20 --seed 3");
  const Run b = run_generate("--device cpu --checkpoint " + ck + " --prompt 'the quick' --length 20 --seed 3");
  CHECK(a.status == 0);
  CHECK(a.output.rfind("the quick", 0) == 0);
  CHECK(a.output.size() == 9 + 20 + 1);  // prompt, 20 bytes, newline
  CHECK(a.output == b.output);
  CHECK(run_generate("--device cpu --checkpoint " + ck + " --prompt x --length 5 --temperature 0").status == 0);

  r = run_generate("--device cpu --checkpoint " + ck + " --temperature -1");
  CHECK(r.status != 0);
  r = run_generate("--device cpu --checkpoint /nonexistent/ck.safetensors");
  CHECK(r.status == 1);
  CHECK(r.output.find("generate: error:") != std::string::npos);
  // A recall (encoder) checkpoint is not a language model.
  TrainConfig c = tiny_recall(out);
  Trainer t(c);
  t.save_checkpoint(out + "/recall.safetensors");
  r = run_generate("--device cpu --checkpoint " + out + "/recall.safetensors");
  CHECK(r.status == 1);
  CHECK(r.output.find("generate needs a language model") != std::string::npos);
  std::remove(data.c_str());
}

TEST_CASE("gpu: train on the GPU follows the CPU trajectory to float32 rounding, and the LM loss falls") {
  COLT5_REQUIRE_GPU();
  TrainConfig c = tiny_recall("/tmp/colt5_test_train_gpu");
  c.steps = 5;
  Trainer cpu(c);
  c.device = "cuda";
  Trainer gpu(c);
  CHECK(gpu.device().type == DeviceType::CUDA);
  while (cpu.step() < c.steps) cpu.train_step(), gpu.train_step();
  for (int64_t i = 0; i < c.steps; ++i) {
    CAPTURE(i);
    CHECK(gpu.history()[i].train_loss == doctest::Approx(cpu.history()[i].train_loss).epsilon(1e-3));
  }
  CHECK(gpu.evaluate().accuracy.has_value());

  // Resume on the GPU: save after 2 steps, load into a fresh trainer, continue; the kernels are
  // deterministic, so the trajectory is the uninterrupted one bit for bit here too.
  c.steps = 5;
  Trainer first(c);
  first.train_step(), first.train_step();
  first.save_checkpoint("/tmp/colt5_test_train_gpu_ck.safetensors");
  Trainer resumed(c);
  resumed.load_checkpoint("/tmp/colt5_test_train_gpu_ck.safetensors");
  while (resumed.step() < c.steps) resumed.train_step();
  for (int64_t i = 0; i < c.steps; ++i) {
    CAPTURE(i);
    CHECK(resumed.history()[i].train_loss == gpu.history()[i].train_loss);
  }
  const auto a = gpu.model().named_parameters(), b = resumed.model().named_parameters();
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(a[i].first);
    CHECK(bytes_of(a[i].second) == bytes_of(b[i].second));
  }

  const std::string data = text_file("gpu.txt");
  TrainConfig t = tiny_text(data);
  t.device = "cuda";
  Trainer lm(t);
  const double before = lm.evaluate().loss;
  while (lm.step() < t.steps) lm.train_step();
  CHECK(lm.evaluate().loss < 0.6 * before);
  std::remove(data.c_str());
}

TEST_CASE("gpu: the CUDA-graph step gives the ordinary step's losses bit for bit, and waits once") {
  COLT5_REQUIRE_GPU();
  const std::string data = text_file("gpu_graph.txt");
  for (const bool lm : {false, true}) {
    CAPTURE(lm);
    TrainConfig c = lm ? tiny_text(data) : tiny_recall("/tmp/colt5_test_train_graph");
    c.device = "cuda";
    c.steps = 7;
    if (lm) c.grad_accum = 2;  // two micro-batches captured in one graph
    Trainer plain(c), graphed(c);
    graphed.set_cuda_graph(true);
    while (plain.step() < c.steps) {
      plain.train_step();
      reset_sync_stats(graphed.device());
      const StepStats s = graphed.train_step();
      CAPTURE(s.step);
      CHECK(s.graphed == (s.step > 2));  // two warm-up steps, then the captured one
      if (s.step > 3) CHECK(sync_stats(graphed.device()).host_waits == 1);  // the loss read
    }
    CHECK(graphed.graph_status().rfind("captured (", 0) == 0);
    for (int64_t i = 0; i < c.steps; ++i) {
      CAPTURE(i);
      CHECK(graphed.history()[i].train_loss == plain.history()[i].train_loss);
      CHECK(graphed.history()[i].grad_norm == plain.history()[i].grad_norm);
    }
    const auto a = plain.model().named_parameters(), b = graphed.model().named_parameters();
    for (size_t i = 0; i < a.size(); ++i) {
      CAPTURE(a[i].first);
      CHECK(bytes_of(a[i].second) == bytes_of(b[i].second));
    }
    // The optimizer state the graph advanced is what a checkpoint holds: resumed from the graphed
    // run's checkpoint or from the plain run's, two more steps give the same losses.
    graphed.save_checkpoint("/tmp/colt5_test_train_graph_a.safetensors");
    plain.save_checkpoint("/tmp/colt5_test_train_graph_b.safetensors");
    c.steps = 9;
    Trainer from_graphed(c), from_plain(c);
    from_graphed.load_checkpoint("/tmp/colt5_test_train_graph_a.safetensors");
    from_plain.load_checkpoint("/tmp/colt5_test_train_graph_b.safetensors");
    while (from_plain.step() < c.steps) from_plain.train_step(), from_graphed.train_step();
    CHECK(from_graphed.history().back().train_loss == from_plain.history().back().train_loss);
    CHECK(graphed.evaluate().loss == plain.evaluate().loss);
  }
  std::remove(data.c_str());
}

TEST_CASE("train on the GPU: running out of memory is an error with a message, not a crash") {
  COLT5_REQUIRE_GPU();
  TrainConfig c = tiny_recall("/tmp/colt5_test_train_oom");
  c.device = "cuda";
  c.seq_len = 256, c.model.dim = 1024, c.batch_size = 65536;
  c.derive();
  Trainer t(c);
  CHECK_THROWS_WITH_AS(t.train_step(), Contains("out of memory"), Error);
  empty_cache(t.device());
  const Run r = run_train("--device cuda --seq-len 256 --dim 1024 --batch-size 65536 --steps 1 --out "
                          "/tmp/colt5_test_train_oom");
  CHECK(r.status == 1);
  CHECK(r.output.find("out of memory") != std::string::npos);
  CHECK(r.output.find("--batch-size") != std::string::npos);
}

TEST_CASE("train: --precision bf16 runs the products under autocast, close to fp32, and resumes in either") {
  TrainConfig c = tiny_recall("/tmp/colt5_test_train_precision");
  std::vector<double> losses[2];
  for (int i = 0; i < 2; ++i) {
    c.precision = i == 0 ? "fp32" : "bf16";
    Trainer t(c);
    for (int s = 0; s < 3; ++s) losses[i].push_back(t.train_step().loss);
  }
  for (int s = 0; s < 3; ++s) {
    CAPTURE(s);
    // bfloat16 operands change the loss in its third digit at most here, and do change it.
    CHECK(losses[1][size_t(s)] == doctest::Approx(losses[0][size_t(s)]).epsilon(1e-2));
    CHECK(losses[1][size_t(s)] != losses[0][size_t(s)]);
  }
  // The precision is a running setting: a bf16 checkpoint's config resumes under fp32.
  TrainConfig ck = c;
  ck.precision = "bf16";
  TrainConfig now = c;
  now.precision = "fp32";
  CHECK(now.resume_mismatch(ck) == "");
  CHECK(TrainConfig::from_json(ck.to_json()).precision == "bf16");
}
