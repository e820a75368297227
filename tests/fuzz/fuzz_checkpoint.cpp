// libFuzzer target: the training program's checkpoint -> config -> model path,
// train::Trainer::read_checkpoint_config(path) and then Trainer::load_model(path, kCPU).
//
// Both take a path, so each input is written to a temporary file of this process
// ($TMPDIR/colt5-fuzz-checkpoint-<pid>.safetensors: parallel runs, -jobs or -fork, do not
// share one). Every input must either load or be rejected with colt5::Error; any other
// exception is a finding (this target aborts, libFuzzer saves the input), and so are crashes,
// sanitizer reports, hangs and excessive memory, which libFuzzer reports itself.
//
// When the config reads, load_model must succeed or fail with colt5::Error as well, and when it
// succeeds the config it reports must be the one read_checkpoint_config returned.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <typeinfo>

#include "core/error.h"
#include "trainer.h"

namespace {

[[noreturn]] void finding(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_checkpoint: FINDING: %s: %s\n", what, detail.c_str());
  std::abort();
}

// The input file's path, made once and never freed: a static std::string would be destroyed
// before the exit handler that removes the file has run.
const std::string* g_path = nullptr;

void remove_input() {
  std::error_code ec;
  std::filesystem::remove(*g_path, ec);
}

void write_input(const uint8_t* data, size_t size) {
  std::ofstream f(*g_path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data), std::streamsize(size));
  f.close();
  // Not a finding of the code under test: the fuzzer itself cannot work.
  if (!f) {
    std::fprintf(stderr, "fuzz_checkpoint: cannot write %s\n", g_path->c_str());
    std::exit(2);
  }
}

void run(const std::string& path) {
  using colt5::train::Trainer;
  colt5::train::TrainConfig cfg;
  try {
    cfg = Trainer::read_checkpoint_config(path);
  } catch (const colt5::Error&) {
    return;  // load_model reads the same config first and would throw the same error
  }
  colt5::train::TrainConfig loaded;
  try {
    const auto model = Trainer::load_model(path, colt5::kCPU, &loaded);
  } catch (const colt5::Error&) {
    return;
  }
  if (loaded.to_json() != cfg.to_json())
    finding("load_model", "its config differs from read_checkpoint_config's: " + loaded.to_json().dump() +
                              " vs " + cfg.to_json().dump());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  const char* dir = std::getenv("TMPDIR");
  g_path = new std::string(std::string(dir && *dir ? dir : "/tmp") + "/colt5-fuzz-checkpoint-" +
                           std::to_string(getpid()) + ".safetensors");
  // libFuzzer ends a run with exit(), so the file goes away with the process; after a crash it
  // stays, beside the input that libFuzzer saved.
  std::atexit(remove_input);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  write_input(data, size);
  try {
    run(*g_path);
  } catch (const std::exception& e) {
    finding("an exception other than colt5::Error", std::string(typeid(e).name()) + ": " + e.what());
  } catch (...) {
    finding("an exception other than colt5::Error", "(not a std::exception)");
  }
  return 0;
}
