// TextDataset, RecallTask and their generator (see nn/data.h).
#include "nn/data.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "core/error.h"

namespace colt5::nn {

// SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators", 2014):
// a Weyl sequence passed through a 64-bit finaliser.
uint64_t SplitMix64::next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

int64_t SplitMix64::below(int64_t n) {
  COLT5_CHECK(n >= 1, "SplitMix64::below: argument 'n' expected >= 1, got ", n);
  // Rejection keeps it exactly uniform: drop the top 2^64 mod n values.
  const uint64_t un = static_cast<uint64_t>(n);
  const uint64_t limit = UINT64_MAX - (UINT64_MAX % un + 1) % un;
  uint64_t r;
  do r = next();
  while (r > limit);
  return static_cast<int64_t>(r % un);
}

SplitMix64 SplitMix64::stream(uint64_t seed, uint64_t a, uint64_t b) {
  SplitMix64 mix(seed);
  uint64_t s = mix.next();
  s ^= SplitMix64(a + 0x632BE59BD9B4E019ull).next();
  s ^= SplitMix64(b + 0x8CB92BA72F3D8DD7ull).next() * 3;
  return SplitMix64(s);
}

// ---------------------------------------------------------------------------------------------
// TextDataset

TextDataset TextDataset::from_file(const std::string& path, int64_t seq_len, double val_fraction) {
  std::ifstream f(path, std::ios::binary);
  COLT5_CHECK(f.good(), "data file '", path, "': cannot open it (missing or unreadable)");
  std::ostringstream ss;
  ss << f.rdbuf();
  COLT5_CHECK(!f.bad(), "data file '", path, "': read error");
  return TextDataset(ss.str(), seq_len, val_fraction, "data file '" + path + "'");
}

TextDataset::TextDataset(std::string bytes, int64_t seq_len, double val_fraction, const std::string& source)
    : bytes_(std::move(bytes)), seq_len_(seq_len) {
  COLT5_CHECK(seq_len >= 1, source, ": 'seq_len' expected >= 1, got ", seq_len);
  COLT5_CHECK(val_fraction > 0.0 && val_fraction < 1.0, source, ": 'val_fraction' expected in (0, 1), got ",
              val_fraction);
  const int64_t total = static_cast<int64_t>(bytes_.size());
  val_size_ = static_cast<int64_t>(static_cast<double>(total) * val_fraction);
  train_size_ = total - val_size_;
  const int64_t need = seq_len + 1;
  COLT5_CHECK(train_size_ >= need && val_size_ >= need, source, " has ", total,
              " bytes: too short for one training window; each split (", train_size_, " train / ", val_size_,
              " validation bytes at val_fraction ", val_fraction, ") needs at least seq_len + 1 = ", need,
              " bytes, so the file needs at least ", static_cast<int64_t>(need / std::min(val_fraction, 1 - val_fraction)) + 1,
              " bytes");
}

Batch TextDataset::batch(Split split, int64_t batch_size, uint64_t seed, uint64_t step) const {
  COLT5_CHECK(batch_size >= 1, "TextDataset::batch: argument 'batch_size' expected >= 1, got ", batch_size);
  const int64_t begin = split == Split::Train ? 0 : train_size_;
  const int64_t len = size(split);
  SplitMix64 rng = SplitMix64::stream(seed, step, split == Split::Train ? 1 : 2);
  std::vector<int64_t> in(batch_size * seq_len_), tg(batch_size * seq_len_);
  for (int64_t b = 0; b < batch_size; ++b) {
    const int64_t start = begin + rng.below(len - seq_len_);  // window [start, start + seq_len]
    for (int64_t i = 0; i < seq_len_; ++i) {
      in[b * seq_len_ + i] = static_cast<unsigned char>(bytes_[start + i]);
      tg[b * seq_len_ + i] = static_cast<unsigned char>(bytes_[start + i + 1]);
    }
  }
  return {from_vector(in, {batch_size, seq_len_}), from_vector(tg, {batch_size, seq_len_})};
}

// ---------------------------------------------------------------------------------------------
// RecallTask

RecallTask::RecallTask(const RecallTaskOptions& o) : opts_(o) {
  COLT5_CHECK(o.num_pairs >= 1, "RecallTask: option 'num_pairs' expected >= 1, got ", o.num_pairs);
  COLT5_CHECK(o.num_keys >= o.num_pairs, "RecallTask: option 'num_keys' expected >= num_pairs (", o.num_pairs,
              "), got ", o.num_keys);
  COLT5_CHECK(o.num_values >= 2, "RecallTask: option 'num_values' expected >= 2, got ", o.num_values);
  COLT5_CHECK(o.num_noise >= 1, "RecallTask: option 'num_noise' expected >= 1, got ", o.num_noise);
  COLT5_CHECK(o.num_queries >= 1, "RecallTask: option 'num_queries' expected >= 1, got ", o.num_queries);
  COLT5_CHECK(o.seq_len >= 2 * o.num_pairs + 1 + o.num_queries,
              "RecallTask: option 'seq_len' expected >= 2 * num_pairs + 1 + num_queries = ",
              2 * o.num_pairs + 1 + o.num_queries, ", got ", o.seq_len);
}

Batch RecallTask::batch(Split split, int64_t batch_size, uint64_t seed, uint64_t step) const {
  COLT5_CHECK(batch_size >= 1, "RecallTask::batch: argument 'batch_size' expected >= 1, got ", batch_size);
  const int64_t n = opts_.seq_len, P = opts_.num_pairs, K = opts_.num_keys, V = opts_.num_values;
  SplitMix64 rng = SplitMix64::stream(seed, step, split == Split::Train ? 3 : 4);
  const int64_t M = opts_.num_queries;
  std::vector<int64_t> in(batch_size * n), label(batch_size * M);
  std::vector<int64_t> keys(K);
  for (int64_t b = 0; b < batch_size; ++b) {
    int64_t* row = in.data() + b * n;
    for (int64_t i = 0; i < K; ++i) keys[i] = i;
    for (int64_t i = 0; i < P; ++i) std::swap(keys[i], keys[i + rng.below(K - i)]);  // P distinct keys
    std::vector<int64_t> values(P);
    for (int64_t i = 0; i < P; ++i) {
      values[i] = rng.below(V);
      row[2 * i] = keys[i];
      row[2 * i + 1] = K + values[i];
    }
    for (int64_t i = 2 * P; i < n - 1 - M; ++i) row[i] = first_noise_token() + rng.below(opts_.num_noise);
    row[n - 1 - M] = query_token();
    for (int64_t q = 0; q < M; ++q) {
      const int64_t j = rng.below(P);
      row[n - M + q] = keys[j];
      label[b * M + q] = values[j];
    }
  }
  const Shape label_shape = M == 1 ? Shape{batch_size} : Shape{batch_size, M};
  return {from_vector(in, {batch_size, n}), from_vector(label, label_shape)};
}

}  // namespace colt5::nn
