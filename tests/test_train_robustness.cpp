// The training program against hostile-but-honest input: checkpoints that are incomplete,
// tampered with or hold non-finite numbers; resuming from another directory or with a moved data
// file; a second run into the same --out; Ctrl-C and SIGTERM; and every program's answer to an
// unknown flag. Each case is a class of failure that once crashed, hung or went on silently.
#include <doctest/doctest.h>

#include <signal.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "autograd/ops.h"
#include "nn/json_read.h"
#include "nn/safetensors.h"
#include "tests/run_program.h"
#include "tests/train_fixtures.h"
#include "trainer.h"

using namespace colt5;
using namespace colt5::train;
using colt5::testing::run_program;
using colt5::testing::tiny_recall;
using doctest::Contains;

namespace {

namespace fs = std::filesystem;

const std::string kTrain = COLT5_TRAIN_EXE;

testing::Run run_train(const std::string& args) { return run_program("COLT5_TRAIN_EXE", COLT5_TRAIN_EXE, args); }

// A fresh scratch folder for one test.
std::string scratch(const std::string& tag) {
  const fs::path p = fs::temp_directory_path() / ("colt5_test_robust_" + tag);
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

// Train `steps` steps of the tiny recall run and save its checkpoint; returns the path.
std::string tiny_checkpoint(const std::string& dir, int64_t steps = 2) {
  TrainConfig c = tiny_recall(dir);
  Trainer t(c);
  for (int64_t i = 0; i < steps; ++i) t.train_step();
  const std::string path = dir + "/ck.safetensors";
  t.save_checkpoint(path);
  return path;
}

// Rewrite a checkpoint after `edit` changed its tensors and metadata.
template <class Edit>
std::string edited(const std::string& path, const std::string& name, Edit edit) {
  nn::SafetensorsFile f = nn::read_safetensors(path);
  edit(f.tensors, f.metadata);
  const std::string out = fs::path(path).parent_path() / name;
  nn::write_safetensors(out, f.tensors, f.metadata);
  return out;
}

// The step a checkpoint was written at (through a Trainer of its own config).
int64_t checkpoint_step(const std::string& path) {
  Trainer t(Trainer::read_checkpoint_config(path));
  t.load_checkpoint(path);
  return t.step();
}

// A Trainer of the tiny run, loading `path`.
void load(const std::string& path) {
  Trainer t(tiny_recall(fs::path(path).parent_path().string()));
  t.load_checkpoint(path);
}

// A long CPU run of the default preset started in the background, returned once it has printed
// its first progress line (so that it is inside the training loop). Its output goes to out.log.
testing::Started start_long_run(const std::string& out, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {"--device", "cpu",      "--steps", "100000", "--log-every", "1",
                                   "--eval-every", "0", "--no-bar", "--out",   out};
  args.insert(args.end(), extra.begin(), extra.end());
  testing::Started p = testing::start_program(kTrain, args, out + ".log");
  REQUIRE_MESSAGE(p.wait_for_output("step ", 300), p.output());
  return p;
}

// The tiny recall run as command-line flags.
const std::string kSmall =
    "--device cpu --seq-len 24 --pairs 2 --keys 4 --values 4 --dim 16 --depth 1 --light-window 4 --heavy-q 4 "
    "--heavy-kv 6 --heavy-ff 4 --heads 2 --dim-head 8 --heavy-heads 2 --heavy-dim-head 8 --batch-size 4 "
    "--eval-batches 1 --eval-every 0";

}  // namespace

TEST_CASE("train robustness: a checkpoint without its optimizer state, or with a wrong one, is refused") {
  const std::string ck = tiny_checkpoint(scratch("optim"));
  load(ck);  // the control: the checkpoint as written resumes
  using SD = nn::StateDict;
  using MD = nn::Metadata;
  auto refuses = [&](const char* name, auto edit, const char* why) {
    CAPTURE(name);
    CHECK_THROWS_WITH_AS(load(edited(ck, name, edit)), Contains(why), Error);
  };
  refuses("no_optim.safetensors", [](SD& t, MD&) { std::erase_if(t, [](auto& kv) { return kv.first.rfind("optim.", 0) == 0; }); },
          "optimizer state 'optim.step' is missing");
  refuses("no_moment.safetensors", [](SD& t, MD&) { REQUIRE(t.erase("optim.state.0.exp_avg") == 1); },
          "'optim.state.0.exp_avg' is missing");
  refuses("no_count.safetensors", [](SD& t, MD&) { REQUIRE(t.erase("optim.state.3.step") == 1); },
          "'optim.state.3.step' is missing");
  refuses("no_param_state.safetensors", [](SD& t, MD&) {
    for (const char* k : {"step", "exp_avg", "exp_avg_sq"}) REQUIRE(t.erase(std::string("optim.state.5.") + k) == 1);
  }, "optimizer state is missing");
  refuses("no_moments.safetensors", [](SD& t, MD& m) {  // every moment gone, and the count with them
    std::erase_if(t, [](auto& kv) { return kv.first.rfind("optim.state.", 0) == 0; });
    m.erase("colt5.optim_tensors");
  }, "no parameter has AdamW state");
  refuses("count_text.safetensors", [](SD&, MD& m) { m["colt5.optim_tensors"] = "many"; },
          "metadata entry 'colt5.optim_tensors'");
  refuses("bad_step.safetensors", [](SD& t, MD&) { t["optim.step"] = from_vector<int64_t>({7}, {}); },
          "'optim.step' is 7 but colt5.step is 2");
  refuses("float_step.safetensors", [](SD& t, MD&) { t["optim.step"] = scalar_tensor(2.0, DType::Float32); },
          "'optim.step' expected one int64");
  refuses("zero_count.safetensors", [](SD& t, MD&) { t["optim.state.1.step"] = from_vector<int64_t>({0}, {}); },
          "'optim.state.1.step' is 0, expected in [1, 2]");
  refuses("negative_v.safetensors",
          [](SD& t, MD&) { t["optim.state.0.exp_avg_sq"] = full_like(t.at("optim.state.0.exp_avg_sq"), -1.0); },
          "a second moment is never negative");
}

TEST_CASE("train robustness: checkpoint metadata is parsed strictly, naming the file and the key") {
  const std::string ck = tiny_checkpoint(scratch("meta"));
  using SD = nn::StateDict;
  using MD = nn::Metadata;
  auto refuses = [&](const char* name, auto edit, const char* why) {
    CAPTURE(name);
    CHECK_THROWS_WITH_AS(load(edited(ck, name, edit)), Contains(why), Error);
  };
  // "1abc" used to resume at step 1.
  refuses("step_text.safetensors", [](SD&, MD& m) { m["colt5.step"] = "1abc"; }, "metadata entry 'colt5.step'");
  refuses("step_space.safetensors", [](SD&, MD& m) { m["colt5.step"] = " 2"; }, "expected a decimal integer");
  refuses("history_type.safetensors", [](SD&, MD& m) { m["colt5.history"] = R"([["x", 1, 1, 1, null, null], [2, 1, 1, 1, null, null]])"; },
          "metadata entry 'colt5.history', row 0: the step is not an integer");
  refuses("history_rows.safetensors", [](SD&, MD& m) { m["colt5.history"] = "[]"; }, "has 0 rows for 2 steps");
  refuses("history_json.safetensors", [](SD&, MD& m) { m["colt5.history"] = "[1, 2"; }, "metadata entry 'colt5.history'");
  // A config nested 200k deep: a short error, not a stack overflow.
  const std::string deep = edited(ck, "deep.safetensors", [](SD&, MD& m) { m["colt5.config"] = std::string(200000, '['); });
  try {
    Trainer::read_checkpoint_config(deep);
    FAIL("a 200k-deep config was accepted");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("colt5.config") != std::string::npos);
    CHECK(std::string(e.what()).size() < 400);
  }
  // A tampered model size is refused by the config's range checks, before any allocation.
  const std::string huge = edited(ck, "huge.safetensors", [](SD&, MD& m) {
    nlohmann::json c = nn::parse_json_untrusted(m.at("colt5.config"), "test");
    c["model"]["dim"] = int64_t(1) << 40;
    m["colt5.config"] = c.dump();
  });
  CHECK_THROWS_WITH_AS(Trainer::read_checkpoint_config(huge), Contains("'dim' expected in [1, 16384]"), Error);
  CHECK_THROWS_WITH_AS(Trainer::load_model(huge, kCPU), Contains("'dim' expected in [1, 16384]"), Error);
  const std::string wide = edited(ck, "wide.safetensors", [](SD&, MD& m) {
    nlohmann::json c = nn::parse_json_untrusted(m.at("colt5.config"), "test");
    c["seq_len"] = int64_t(1) << 40;
    m["colt5.config"] = c.dump();
  });
  CHECK_THROWS_WITH_AS(Trainer::read_checkpoint_config(wide), Contains("flag --seq-len: expected in [2, 1048576]"), Error);
}

TEST_CASE("train robustness: non-finite numbers in a checkpoint are refused, naming the tensor") {
  const std::string ck = tiny_checkpoint(scratch("nan"));
  for (double bad : {std::nan(""), double(INFINITY), -double(INFINITY)}) {
    CAPTURE(bad);
    const std::string p = edited(ck, "bad.safetensors", [&](nn::StateDict& t, nn::Metadata&) {
      Tensor w = t.at("model.head.weight").clone();
      w.data_ptr<float>()[3] = static_cast<float>(bad);
      t["model.head.weight"] = w;
    });
    CHECK_THROWS_WITH_AS(Trainer::load_model(p, kCPU), Contains("tensor 'model.head.weight' holds"), Error);
    CHECK_THROWS_WITH_AS(load(p), Contains("tensor 'model.head.weight' holds"), Error);
  }
  const std::string p = edited(ck, "bad_moment.safetensors", [&](nn::StateDict& t, nn::Metadata&) {
    t["optim.state.2.exp_avg"] = full_like(t.at("optim.state.2.exp_avg"), std::nan(""));
  });
  CHECK_THROWS_WITH_AS(load(p), Contains("tensor 'optim.state.2.exp_avg' holds"), Error);
}

TEST_CASE("train program: a new run does not replace another run's checkpoint unless --overwrite is given") {
  const std::string out = scratch("overwrite");
  REQUIRE(run_train(kSmall + " --steps 2 --out " + out).status == 0);
  const auto before = fs::last_write_time(out + "/checkpoint.safetensors");
  testing::Run r = run_train(kSmall + " --steps 1 --out " + out);
  CHECK(r.status == 1);
  CHECK(r.output.find("already holds a run's checkpoint") != std::string::npos);
  CHECK(r.output.find("--resume " + out + "/checkpoint.safetensors") != std::string::npos);
  CHECK(fs::last_write_time(out + "/checkpoint.safetensors") == before);  // untouched
  r = run_train(kSmall + " --steps 1 --out " + out + " --overwrite");
  CHECK(r.status == 0);
  CHECK(Trainer::read_checkpoint_config(out + "/checkpoint.safetensors").steps == 1);
  // Resuming into the folder the checkpoint lives in is what --resume is for: no --overwrite needed.
  r = run_train("--resume " + out + "/checkpoint.safetensors --steps 3 --out " + out);
  CHECK(r.status == 0);
}

TEST_CASE("train program: resume from another directory, and with a moved data file named by --data") {
  const std::string root = scratch("moved");
  const fs::path cwd = fs::current_path();
  {
    std::ofstream f(root + "/data.txt", std::ios::binary);
    for (int i = 0; i < 300; ++i) f << "the quick brown fox jumps over the lazy dog. ";
  }
  const std::string lm = "--device cpu --steps 2 --seq-len 32 --dim 16 --depth 1 --light-window 8 --heavy-window 8 "
                         "--heavy-kv 4 --heavy-ff 2 --ff-window 8 --heads 2 --dim-head 8 --heavy-heads 2 "
                         "--heavy-dim-head 8 --batch-size 4 --eval-batches 1 --eval-every 0";
  fs::current_path(root);  // relative --data and --out
  const testing::Run first = run_train(lm + " --data data.txt --out run");
  fs::current_path(cwd);
  INFO(first.output);
  REQUIRE(first.status == 0);
  const std::string ck = root + "/run/checkpoint.safetensors";
  const TrainConfig stored = Trainer::read_checkpoint_config(ck);
  CHECK(stored.data_path == root + "/data.txt");  // absolute
  CHECK(stored.data_size == 300 * 45);
  CHECK(stored.data_hash.size() == 16);
  CHECK(stored.out_dir == root + "/run");

  // From another working directory, the stored absolute path still finds the file.
  testing::Run r = run_train("--resume " + ck + " --steps 3");
  CHECK_MESSAGE(r.status == 0, r.output);
  CHECK(!fs::exists("run"));  // it wrote where the run was, not under this working directory
  // The file moves: the refusal names --data and what the file must be.
  fs::rename(root + "/data.txt", root + "/moved.txt");
  r = run_train("--resume " + ck + " --steps 4");
  CHECK(r.status == 1);
  CHECK(r.output.find("is not there any more; give --data FILE") != std::string::npos);
  r = run_train("--resume " + ck + " --steps 4 --data " + root + "/moved.txt");
  CHECK_MESSAGE(r.status == 0, r.output);
  CHECK(Trainer::read_checkpoint_config(ck).data_path == root + "/moved.txt");
  // Another file of the same size is not the same data.
  {
    std::ofstream f(root + "/other.txt", std::ios::binary);
    for (int i = 0; i < 300; ++i) f << "the quick brown fox jumps over the lazy cat. ";
  }
  r = run_train("--resume " + ck + " --steps 5 --data " + root + "/other.txt");
  CHECK(r.status == 1);
  CHECK(r.output.find("is not the file this run was trained on") != std::string::npos);
}

TEST_CASE("train program: Ctrl-C finishes the step, writes the checkpoint and says how to resume") {
  const std::string out = scratch("sigint");
  testing::Started p = start_long_run(out);
  REQUIRE(::kill(p.pid, SIGINT) == 0);
  const int status = p.wait();
  const std::string log = p.output();
  INFO(log);
  CHECK(status == 128 + SIGINT);
  CHECK(log.find("stopped by SIGINT (Ctrl-C) at step") != std::string::npos);
  CHECK(log.find("continue with: " + kTrain + " --resume " + out + "/checkpoint.safetensors") != std::string::npos);
  // The checkpoint is complete: it loads, and a resumed run goes on from its step.
  const std::string ck = out + "/checkpoint.safetensors";
  const int64_t step = checkpoint_step(ck);
  CHECK(step >= 1);
  const testing::Run r = run_train("--resume " + ck + " --steps " + std::to_string(step + 1) + " --eval-batches 1");
  CHECK(r.status == 0);
}

TEST_CASE("train program: a second Ctrl-C ends the program at once") {
  const std::string out = scratch("sigint2");
  // Steps of a few seconds: the second signal comes while the step the first one interrupted is
  // still running, so the program has not saved and exited yet.
  testing::Started p = start_long_run(out, {"--batch-size", "2048"});
  REQUIRE(::kill(p.pid, SIGINT) == 0);
  REQUIRE_MESSAGE(p.wait_for_output("press Ctrl-C again", 10), p.output());
  REQUIRE(::kill(p.pid, SIGINT) == 0);
  int sig = 0;
  CHECK(p.killed_by_signal(&sig));
  CHECK(sig == SIGINT);
}

TEST_CASE("train program: one run per --out; SIGTERM stops the first one cleanly") {
  const std::string out = scratch("lock");
  testing::Started first = start_long_run(out);
  const testing::Run second = run_train(kSmall + " --steps 1 --overwrite --out " + out);
  CHECK(second.status == 1);
  CHECK(second.output.find("another train (pid " + std::to_string(first.pid) + ") is writing to") != std::string::npos);
  REQUIRE(::kill(first.pid, SIGTERM) == 0);
  CHECK(first.wait() == 128 + SIGTERM);
  CHECK(first.output().find("stopped by SIGTERM") != std::string::npos);
  CHECK_NOTHROW(Trainer::read_checkpoint_config(out + "/checkpoint.safetensors"));
  // The lock went with the process: the run continues in the same folder.
  const std::string ck = out + "/checkpoint.safetensors";
  const testing::Run again =
      run_train("--resume " + ck + " --steps " + std::to_string(checkpoint_step(ck) + 1) + " --eval-batches 1");
  CHECK_MESSAGE(again.status == 0, again.output);
}

TEST_CASE("generate: non-finite flags and checkpoints with non-finite weights are errors") {
  const std::string out = scratch("generate");
  const std::string data = testing::text_file("robust_gen.txt");
  REQUIRE(run_train("--device cpu --data " + data + " --steps 2 --seq-len 32 --dim 16 --depth 1 --light-window 8 "
                    "--heavy-window 8 --heavy-kv 4 --heavy-ff 2 --ff-window 8 --heads 2 --dim-head 8 --heavy-heads 2 "
                    "--heavy-dim-head 8 --batch-size 4 --eval-batches 1 --out " + out).status == 0);
  const std::string ck = out + "/checkpoint.safetensors";
  auto generate = [](const std::string& args) { return run_program("COLT5_GENERATE_EXE", COLT5_GENERATE_EXE, args); };
  CHECK(generate("--device cpu --checkpoint " + ck + " --length 5").status == 0);  // the control
  testing::Run r = generate("--device cpu --checkpoint " + ck + " --length 5 --temperature nan");
  CHECK(r.status == 1);
  CHECK(r.output.find("flag --temperature: expected a finite value") != std::string::npos);
  const std::string bad = edited(ck, "nan.safetensors", [](nn::StateDict& t, nn::Metadata&) {
    t["model.to_logits.weight"] = full_like(t.at("model.to_logits.weight"), std::nan(""));
  });
  r = generate("--device cpu --checkpoint " + bad + " --length 5");
  CHECK(r.status == 1);
  CHECK(r.output.find("tensor 'model.to_logits.weight' holds nan") != std::string::npos);
}

TEST_CASE("programs: an unknown flag is an error that shows the usage") {
  const std::string root = COLT5_BUILD_ROOT;
  for (const char* program : {"examples/train", "examples/generate", "examples/routing_walkthrough",
                              "examples/safetensors_tool", "examples/gradcheck_all", "examples/gradcheck",
                              "tests/golden_parity", "bench/colt5_bench", "examples/train_image"}) {
    CAPTURE(program);
    const testing::Run r = run_program("COLT5_NO_SUCH_VARIABLE", (root + "/" + program).c_str(), "--no-such-flag");
    CHECK(r.status != 0);
    CHECK(r.status != 128 + SIGSEGV);
    const bool usage = r.output.find("usage") != std::string::npos || r.output.find("Usage") != std::string::npos;
    CHECK_MESSAGE(usage, r.output);
  }
}
