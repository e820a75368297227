// safetensors_tool: inspect a checkpoint, or write a sample one.
//
//   safetensors_tool info FILE      names, dtypes, shapes and metadata of every tensor
//   safetensors_tool sample FILE    a FeedForward(16, mult 2) state dict plus one tensor of each
//                                   dtype we write (F64, F32, I64, I32, BOOL), for checking that
//                                   other readers (PyTorch's safetensors.torch.load_file) accept
//                                   our files
// Every file is read as untrusted input: a corrupt one is a clear error and exit status 1.
#include <cstdio>
#include <string>

#include "core/format.h"
#include "nn/layers.h"
#include "nn/safetensors.h"

using namespace colt5;

int main(int argc, char** argv) {
  if (argc != 3 || (std::string(argv[1]) != "info" && std::string(argv[1]) != "sample")) {
    std::fprintf(stderr, "usage: safetensors_tool info FILE | safetensors_tool sample FILE\n");
    return 2;
  }
  const std::string cmd = argv[1], path = argv[2];
  try {
    if (cmd == "sample") {
      manual_seed(0);
      nn::FeedForward ff(16, {.mult = 2});
      nn::StateDict sd = ff.state_dict();
      sd["sample.f64"] = arange(0.0, 6.0, 1.0, DType::Float64).reshape({2, 3});
      sd["sample.f32_transposed"] = arange(0.0, 6.0, 1.0, DType::Float32).reshape({2, 3}).t();
      sd["sample.i64"] = arange(-3.0, 3.0, 1.0, DType::Int64);
      sd["sample.i32"] = arange(0.0, 4.0, 1.0, DType::Int32);
      sd["sample.bool"] = gt(arange(0.0, 4.0, 1.0, DType::Float32), 1.5);
      nn::write_safetensors(path, sd, {{"written_by", "colt5 safetensors_tool"}});
      fmt::print("wrote {} tensors to {}\n", sd.size(), path);
      return 0;
    }
    nn::SafetensorsFile f = nn::read_safetensors(path);
    for (const auto& [k, v] : f.metadata) fmt::print("metadata {} = {}\n", k, v);
    for (const auto& [name, t] : f.tensors)
      fmt::print("{:40} {:8} {}\n", name, dtype_name(t.dtype()), fmt::join(t.shape(), "x"));
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "safetensors_tool: %s\n", e.what());
    return 1;
  }
}
