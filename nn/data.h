// Training data: byte-level text from a file, and a synthetic long-range task made in code.
//
// Every batch is a pure function of (seed, step): batch(step) draws from a small counter-seeded
// host generator, so a run resumed at step s sees exactly the batches an uninterrupted run
// would, without saving any data-loader state.
//
// TextDataset: the bytes of a file (vocabulary 256). The first (1 - val_fraction) of the file is
// the training split, the rest the validation split. A batch holds `batch` windows of seq_len + 1
// bytes at uniformly random offsets inside the split: inputs = window[0 .. seq_len),
// targets = window[1 .. seq_len] (next-byte prediction).
//
// RecallTask (associative recall): with K keys, V values, P pairs, M queries and length n, a
// sequence is
//   k_1 v_1 k_2 v_2 ... k_P v_P  z z ... z  Q k_j1 ... k_jM          (n tokens)
// with P distinct keys, values drawn uniformly (repeats allowed), z noise tokens drawn uniformly
// from their own vocabulary of Z, Q a query marker, and k_j1 .. k_jM keys drawn uniformly from the
// P (repeats allowed); the label of query i is the value paired with k_ji (a class in [0, V)).
// Targets are [b] for M = 1 (one question: the original task, the same batches as before M
// existed) and [b, M] otherwise. Several questions per sequence (multi-query associative recall,
// "MQAR" in the Zoology paper, arXiv 2312.04927) give the binding M labels per sequence.
// Tokens: keys 0 .. K-1, values K .. K+V-1, noise K+V .. K+V+Z-1, Q = K+V+Z (vocabulary
// K + V + Z + 1). Noise rather than one repeated filler token matters for learning: the routers
// start from random scores, and a repeated filler scores identically everywhere, so at some
// initialisations every filler outranks every key/value token and the heavy branch never sees a
// pair (routing gradients reach only the picked tokens).
// The answer sits at position 2j - 1 <= 2P - 1 and the question at n - 1: when n - 2P is larger
// than the light attention's reach, local attention alone can do no better than chance (1 / V),
// while a heavy branch that routes the query and the pairs can read the answer.
#pragma once

#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace colt5::nn {

// A tiny deterministic generator (SplitMix64): the same numbers on every machine and compiler.
class SplitMix64 {
public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next();
  int64_t below(int64_t n);  // uniform in [0, n), n >= 1
  // A generator for (seed, a, b): independent streams for each step and split.
  static SplitMix64 stream(uint64_t seed, uint64_t a, uint64_t b = 0);

private:
  uint64_t state_;
};

// Inputs int64 [b, n] on the CPU; targets int64 [b, n] (language model) or [b] (classification).
struct Batch {
  Tensor inputs;
  Tensor targets;
};

enum class Split { Train, Val };

class TextDataset {
public:
  // Reads the whole file. Throws colt5::Error when the file is missing or unreadable, when
  // val_fraction is outside (0, 1), or when either split is shorter than seq_len + 1 bytes.
  static TextDataset from_file(const std::string& path, int64_t seq_len, double val_fraction = 0.1);
  // The same checks on bytes in memory; `source` names them in messages.
  TextDataset(std::string bytes, int64_t seq_len, double val_fraction, const std::string& source = "<memory>");

  Batch batch(Split split, int64_t batch_size, uint64_t seed, uint64_t step) const;

  int64_t seq_len() const { return seq_len_; }
  int64_t size(Split split) const { return split == Split::Train ? train_size_ : val_size_; }
  const std::string& bytes() const { return bytes_; }
  static constexpr int64_t vocab_size() { return 256; }

private:
  std::string bytes_;
  int64_t seq_len_, train_size_, val_size_;
};

struct RecallTaskOptions {
  int64_t seq_len = 64;   // n
  int64_t num_pairs = 4;  // P
  int64_t num_keys = 16;  // K >= P
  int64_t num_values = 16;  // V >= 2
  int64_t num_noise = 16;   // Z >= 1
  int64_t num_queries = 1;  // M >= 1: questions at the end, each a key
};

class RecallTask {
public:
  // Throws colt5::Error naming the option when P < 1, K < P, V < 2, Z < 1, M < 1 or n < 2P + 1 + M.
  explicit RecallTask(const RecallTaskOptions& opts);

  // Train and validation batches come from separate streams of the same seed.
  Batch batch(Split split, int64_t batch_size, uint64_t seed, uint64_t step) const;

  const RecallTaskOptions& options() const { return opts_; }
  int64_t vocab_size() const { return vocab_size(opts_); }
  int64_t num_classes() const { return num_classes(opts_); }
  // The same from the options alone (before they are validated).
  static int64_t vocab_size(const RecallTaskOptions& o) { return o.num_keys + o.num_values + o.num_noise + 1; }
  static int64_t num_classes(const RecallTaskOptions& o) { return o.num_values; }
  double chance() const { return 1.0 / static_cast<double>(opts_.num_values); }
  int64_t first_noise_token() const { return opts_.num_keys + opts_.num_values; }
  int64_t query_token() const { return opts_.num_keys + opts_.num_values + opts_.num_noise; }

private:
  RecallTaskOptions opts_;
};

}  // namespace colt5::nn
