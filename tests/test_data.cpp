// Training data (nn/data.h): the generator's reference values, TextDataset's windows, splits and
// errors, RecallTask's sequences and labels, and determinism in (seed, step).
#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <string>

#include "autograd/ops.h"
#include "nn/data.h"

using namespace colt5;
using namespace colt5::nn;
using doctest::Contains;

namespace {

std::string temp_file(const std::string& name, const std::string& contents) {
  const std::string path = "/tmp/colt5_test_data_" + name;
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

}  // namespace

TEST_CASE("SplitMix64: reference outputs and uniform draws") {
  SplitMix64 g(0);  // the published sequence for seed 0
  CHECK(g.next() == 0xE220A8397B1DCDAFull);
  CHECK(g.next() == 0x6E789E6AA1B965F4ull);
  SplitMix64 h(42);
  std::vector<int64_t> counts(5, 0);
  for (int i = 0; i < 5000; ++i) ++counts[h.below(5)];
  for (int64_t c : counts) CHECK((c > 900 && c < 1100));
  CHECK(SplitMix64::stream(1, 2, 3).next() == SplitMix64::stream(1, 2, 3).next());
  CHECK(SplitMix64::stream(1, 2, 3).next() != SplitMix64::stream(1, 3, 3).next());
}

TEST_CASE("TextDataset: next-byte windows inside their split, deterministic in (seed, step)") {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += static_cast<char>('a' + i % 26);
  TextDataset d(text, 16, 0.2);
  CHECK(d.size(Split::Train) == 800);
  CHECK(d.size(Split::Val) == 200);
  const Batch b = d.batch(Split::Train, 4, 7, 3);
  CHECK(b.inputs.shape() == Shape{4, 16});
  CHECK(b.targets.shape() == Shape{4, 16});
  const auto in = b.inputs.to_vector<int64_t>(), tg = b.targets.to_vector<int64_t>();
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t i = 0; i < 16; ++i) CHECK(tg[r * 16 + i] == 'a' + (in[r * 16 + i] - 'a' + 1) % 26);
  CHECK(d.batch(Split::Train, 4, 7, 3).inputs.to_vector<int64_t>() == in);
  CHECK(d.batch(Split::Train, 4, 7, 4).inputs.to_vector<int64_t>() != in);

  // Validation windows come from the last 200 bytes: mark them and check.
  std::string marked = std::string(800, 'x') + std::string(200, 'v');
  TextDataset m(marked, 16, 0.2);
  for (int64_t v : m.batch(Split::Val, 8, 1, 0).inputs.to_vector<int64_t>()) CHECK(v == 'v');
  for (int64_t v : m.batch(Split::Train, 8, 1, 0).targets.to_vector<int64_t>()) CHECK(v == 'x');
}

TEST_CASE("TextDataset: bad inputs") {
  CHECK_THROWS_WITH_AS(TextDataset::from_file("/nonexistent/colt5.txt", 16), Contains("cannot open it"), Error);
  CHECK_THROWS_WITH_AS(TextDataset::from_file("/tmp", 16), Contains("'/tmp'"), Error);
  const std::string short_file = temp_file("short.txt", "only a few bytes");
  CHECK_THROWS_WITH_AS(TextDataset::from_file(short_file, 16), Contains("too short for one training window"), Error);
  const std::string empty = temp_file("empty.txt", "");
  CHECK_THROWS_WITH_AS(TextDataset::from_file(empty, 16), Contains("has 0 bytes"), Error);
  CHECK_THROWS_WITH_AS(TextDataset(std::string(1000, 'a'), 16, 1.5), Contains("'val_fraction' expected in (0, 1)"),
                       Error);
  CHECK_THROWS_WITH_AS(TextDataset(std::string(1000, 'a'), 0, 0.1), Contains("'seq_len' expected >= 1"), Error);
  std::remove(short_file.c_str());
  std::remove(empty.c_str());
}

TEST_CASE("RecallTask: sequences, labels, and determinism") {
  RecallTaskOptions o;
  o.seq_len = 40, o.num_pairs = 5, o.num_keys = 12, o.num_values = 7, o.num_noise = 3;
  RecallTask task(o);
  CHECK(task.vocab_size() == 12 + 7 + 3 + 1);
  const Batch b = task.batch(Split::Train, 50, 9, 0);
  CHECK(b.inputs.shape() == Shape{50, 40});
  CHECK(b.targets.shape() == Shape{50});
  const auto in = b.inputs.to_vector<int64_t>(), y = b.targets.to_vector<int64_t>();
  std::set<int64_t> labels;
  for (int64_t r = 0; r < 50; ++r) {
    const int64_t* row = in.data() + r * 40;
    std::set<int64_t> keys;
    int64_t answer = -1;
    for (int64_t i = 0; i < 5; ++i) {
      CHECK(row[2 * i] < 12);                                     // a key
      CHECK((row[2 * i + 1] >= 12 && row[2 * i + 1] < 19));       // a value
      keys.insert(row[2 * i]);
      if (row[2 * i] == row[39]) answer = row[2 * i + 1] - 12;
    }
    CHECK(keys.size() == 5);  // distinct keys
    for (int64_t i = 10; i < 38; ++i) CHECK((row[i] >= 19 && row[i] < 22));  // noise
    CHECK(row[38] == task.query_token());
    CHECK(answer == y[r]);  // the query key is one of the pairs, and the label is its value
    labels.insert(y[r]);
  }
  CHECK(labels.size() >= 5);  // the labels vary
  CHECK(task.batch(Split::Train, 50, 9, 0).inputs.to_vector<int64_t>() == in);
  CHECK(task.batch(Split::Val, 50, 9, 0).inputs.to_vector<int64_t>() != in);
}

TEST_CASE("RecallTask: several queries per sequence, and one query is the original task") {
  RecallTaskOptions o;
  o.seq_len = 30, o.num_pairs = 3, o.num_keys = 10, o.num_values = 6, o.num_noise = 2, o.num_queries = 4;
  RecallTask task(o);
  const Batch b = task.batch(Split::Train, 20, 5, 3);
  REQUIRE(b.targets.shape() == Shape{20, 4});
  const auto in = b.inputs.to_vector<int64_t>(), y = b.targets.to_vector<int64_t>();
  for (int64_t r = 0; r < 20; ++r) {
    const int64_t* row = in.data() + r * 30;
    for (int64_t i = 6; i < 25; ++i) CHECK((row[i] >= 16 && row[i] < 18));  // noise up to the marker
    CHECK(row[25] == task.query_token());
    for (int64_t q = 0; q < 4; ++q) {
      int64_t answer = -1;
      for (int64_t i = 0; i < 3; ++i)
        if (row[2 * i] == row[26 + q]) answer = row[2 * i + 1] - 10;
      CHECK(answer == y[size_t(r * 4 + q)]);  // every question is a key of the pairs, labelled by its value
    }
  }
  // M = 1 draws the same numbers as the task did before num_queries existed: the first question
  // of an M-query sequence is the M = 1 sequence's question, and everything before it is the same
  // (for the first row: the rows share one stream, and M = 4 draws three more numbers per row).
  o.num_queries = 1;
  o.seq_len = 27;
  const Batch one = RecallTask(o).batch(Split::Train, 20, 5, 3);
  CHECK(one.targets.shape() == Shape{20});
  const auto in1 = one.inputs.to_vector<int64_t>(), y1 = one.targets.to_vector<int64_t>();
  for (int64_t i = 0; i < 27; ++i) CHECK(in1[size_t(i)] == in[size_t(i)]);
  CHECK(y1[0] == y[0]);
}

TEST_CASE("RecallTask: bad options") {
  RecallTaskOptions o;
  o.num_pairs = 0;
  CHECK_THROWS_WITH_AS(RecallTask{o}, Contains("'num_pairs' expected >= 1"), Error);
  o = {};
  o.num_keys = 2;
  CHECK_THROWS_WITH_AS(RecallTask{o}, Contains("'num_keys' expected >= num_pairs"), Error);
  o = {};
  o.seq_len = 9;
  CHECK_THROWS_WITH_AS(RecallTask{o}, Contains("'seq_len' expected >= 2 * num_pairs + 1 + num_queries = 10, got 9"),
                       Error);
  o = {};
  o.num_queries = 0;
  CHECK_THROWS_WITH_AS(RecallTask{o}, Contains("'num_queries' expected >= 1, got 0"), Error);
  o = {};
  o.num_values = 1;
  CHECK_THROWS_WITH_AS(RecallTask{o}, Contains("'num_values' expected >= 2"), Error);
}
