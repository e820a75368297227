// Launching one kernel over a list of tensors (the optimizer's list ops, core/ops/optim.h).
//
// A list is cut into chunks of kChunk elements; each block of a launch handles one chunk of one
// tensor. The table that says which is a kernel argument (passed by value, so no copy to the
// device and nothing for a captured CUDA graph to lose): up to kTableTensors tensors with L
// pointers each and kTableBlocks chunks. A list that does not fit takes several launches; a
// tensor may continue in the next table. Block b of a launch is chunk number first_block + b
// of the whole list, in list order, which is what a reduction over the list needs to combine
// its partial results in a fixed order.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace colt5::cuda {

constexpr int kTableTensors = 32;
constexpr int kTableBlocks = 256;
// 8192 elements a chunk: 32 per thread. Larger chunks leave a model of many small parameters
// with one block per tensor walking its elements serially (65536 took 89 us a launch for the
// GPU preset's AdamW step, a few MB of traffic); smaller ones fill the 256-block table sooner.
constexpr int64_t kChunk = 8192;
constexpr int kListThreads = 256;

template <int L>
struct TensorTable {
  void* ptr[L][kTableTensors];
  int64_t numel[kTableTensors];
  int64_t index[kTableTensors];   // the tensor's position in the whole list
  unsigned char block_tensor[kTableBlocks];
  int block_chunk[kTableBlocks];  // the chunk within its tensor
  int64_t first_block;            // the list-wide chunk number of block 0
};
static_assert(sizeof(TensorTable<4>) <= 4096, "a kernel argument must stay within 4 KiB");

// The elements [begin, end) of the chunk that block b handles.
template <int L>
__device__ __forceinline__ void chunk_range(const TensorTable<L>& t, int b, int64_t& begin, int64_t& end) {
  const int k = t.block_tensor[b];
  begin = int64_t(t.block_chunk[b]) * kChunk;
  end = begin + kChunk < t.numel[k] ? begin + kChunk : t.numel[k];
}

// Number of chunks of a list.
inline int64_t list_chunks(const std::vector<int64_t>& numel) {
  int64_t c = 0;
  for (int64_t n : numel) c += (n + kChunk - 1) / kChunk;
  return c;
}

// Calls launch(table, blocks) for consecutive tables that cover every chunk of the list, in
// order. ptrs[i] holds tensor i's L pointers, numel[i] its length (0: skipped).
template <int L, class Launch>
void for_each_table(const std::vector<std::array<void*, L>>& ptrs, const std::vector<int64_t>& numel, Launch launch) {
  TensorTable<L> t{};
  int tensors = 0, blocks = 0;
  auto flush = [&] {
    if (blocks == 0) return;
    launch(t, blocks);
    t.first_block += blocks;
    tensors = blocks = 0;
  };
  for (size_t i = 0; i < ptrs.size(); ++i) {
    const int64_t chunks = (numel[i] + kChunk - 1) / kChunk;
    int slot = -1;  // tensor i's entry in the current table
    for (int64_t c = 0; c < chunks; ++c) {
      if (slot < 0) {
        if (tensors == kTableTensors) flush();
        slot = tensors++;
        for (int l = 0; l < L; ++l) t.ptr[l][slot] = ptrs[i][l];
        t.numel[slot] = numel[i];
        t.index[slot] = int64_t(i);
      }
      t.block_tensor[blocks] = static_cast<unsigned char>(slot);
      t.block_chunk[blocks] = static_cast<int>(c);
      if (++blocks == kTableBlocks) {
        flush();
        slot = -1;
      }
    }
  }
  flush();
}

}  // namespace colt5::cuda
