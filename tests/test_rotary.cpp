// Rotary position embeddings (nn/rotary.h) and their use in LocalMHA and the models: the
// frequencies, the rotation's two defining properties (it preserves norms; scores depend on the
// offset only), LocalMHA's options and state_dict key, and ModelConfig's light_rotary. The parity
// with local-attention itself is in the golden fixtures local_mha_rotary_*; gradients are
// gradchecked through the case list (tests/cases/rotary.cpp).
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/ops.h"
#include "nn/local_attention.h"
#include "nn/models.h"
#include "nn/rotary.h"
#include "tests/cases/cases.h"

using namespace colt5;
using colt5::cases::leaf;
using doctest::Contains;

namespace {
double item(const Tensor& t) { return t.to(DType::Float64).contiguous().data_ptr<double>()[0]; }
}  // namespace

TEST_CASE("rotary: inv_freq is theta^(-2i/d), computed in float32 as the reference") {
  nn::RotaryEmbedding rope(8);
  const Tensor f = rope.inv_freq;
  REQUIRE(f.shape() == Shape({4}));
  CHECK(f.dtype() == DType::Float32);
  const float* p = f.data_ptr<float>();
  for (int i = 0; i < 4; ++i) CHECK(p[i] == 1.0f / std::pow(10000.0f, float(2 * i) / 8.0f));
  // a buffer, saved under its own name and not trained
  CHECK(rope.named_parameters().empty());
  CHECK(rope.state_dict().count("inv_freq") == 1);
  CHECK_THROWS_WITH(nn::RotaryEmbedding(5), Contains("'dim' expected an even value >= 2, got 5"));
  CHECK_THROWS_WITH(nn::RotaryEmbedding(4, -1.0), Contains("'theta' expected a finite value > 0"));
  CHECK_THROWS_WITH(rope.angles(arange(4, DType::Float32)), Contains("positions"));
}

TEST_CASE("rotary: angles are p * (f | f); rotate_half is (-t2 | t1)") {
  nn::RotaryEmbedding rope(4);
  rope.to(DType::Float64);
  const Tensor a = rope.angles(3, 2).contiguous();  // positions 2, 3, 4
  REQUIRE(a.shape() == Shape({3, 4}));
  const double* p = a.data_ptr<double>();
  const double f1 = double(1.0f / std::pow(10000.0f, 0.5f));
  CHECK(p[0] == 2.0);
  CHECK(p[1] == doctest::Approx(2 * f1).epsilon(1e-15));
  CHECK(p[2] == 2.0);  // the second half repeats the first
  CHECK(p[4 * 2 + 3] == doctest::Approx(4 * f1).epsilon(1e-15));
  const Tensor t = from_vector(std::vector<double>{1, 2, 3, 4}, {1, 4});
  const Tensor r = nn::rotate_half(t).contiguous();
  const double* q = r.data_ptr<double>();
  CHECK(q[0] == -3);
  CHECK(q[1] == -4);
  CHECK(q[2] == 1);
  CHECK(q[3] == 2);
  CHECK_THROWS_WITH(nn::rotate_half(from_vector(std::vector<double>{1, 2, 3}, {3})), Contains("even last dim"));
}

TEST_CASE("rotary: the rotation preserves norms and scores depend on the offset alone") {
  nn::RotaryEmbedding rope(8);
  rope.to(DType::Float64);
  const Tensor q = leaf({1, 8}, DType::Float64, kCPU, 1, cases::Layout::Contiguous, 1, 0, false);
  const Tensor k = leaf({1, 8}, DType::Float64, kCPU, 2, cases::Layout::Contiguous, 1, 0, false);
  auto at = [&](const Tensor& t, int64_t p) { return nn::apply_rotary(rope.angles(1, p), t); };
  CHECK(item(sum(at(q, 37) * at(q, 37))) == doctest::Approx(item(sum(q * q))).epsilon(1e-13));
  // <R(a) q, R(b) k> for (a, b) = (3, 8), (10, 15), (100, 105): offset 5 each time
  const double s0 = item(sum(at(q, 3) * at(k, 8)));
  CHECK(item(sum(at(q, 10) * at(k, 15))) == doctest::Approx(s0).epsilon(1e-12));
  CHECK(item(sum(at(q, 100) * at(k, 105))) == doctest::Approx(s0).epsilon(1e-12));
  // and a different offset gives a different score
  CHECK(std::abs(item(sum(at(q, 3) * at(k, 9))) - s0) > 1e-6);
}

TEST_CASE("rotary: LocalMHA keeps the frequencies at attn_fn.rel_pos.inv_freq and checks its options") {
  nn::LocalMHAOptions o;
  o.dim = 16, o.window_size = 4, o.dim_head = 8, o.heads = 2, o.use_rotary_pos_emb = true;
  nn::LocalMHA m(o);
  const auto sd = m.state_dict();
  CHECK(sd.count("attn_fn.rel_pos.inv_freq") == 1);
  CHECK(m.named_parameters().size() == 2);  // to_qkv, to_out: the buffer is not trained
  o.use_rotary_pos_emb = false;
  CHECK(nn::LocalMHA{o}.state_dict().count("attn_fn.rel_pos.inv_freq") == 0);
  o.use_rotary_pos_emb = true;
  o.dim_head = 5;
  CHECK_THROWS_WITH(nn::LocalMHA{o}, Contains("'dim_head' expected an even value with use_rotary_pos_emb"));
  o.dim_head = 8;
  o.use_xpos = true;
  CHECK_THROWS_WITH(nn::LocalMHA{o}, Contains("'use_xpos' = true is not supported"));
}

TEST_CASE("rotary: LocalMHA with rotary is translation-equivariant across windows") {
  // With rotary positions and no absolute ones, shifting a sequence by whole windows shifts the
  // output (away from the edges): the positions enter only as offsets.
  nn::LocalMHAOptions o;
  o.dim = 8, o.window_size = 4, o.dim_head = 4, o.heads = 2, o.use_rotary_pos_emb = true;
  o.look_backward = 1, o.look_forward = 1;
  Generator gen(3);
  nn::LocalMHA m(o, &gen);
  m.to(DType::Float64);
  const Tensor x = leaf({1, 24, 8}, DType::Float64, kCPU, 5, cases::Layout::Contiguous, 1, 0, false);
  const Tensor y = m(x);
  const Tensor ys = m(x.narrow(1, 4, 20).contiguous());  // the same tokens, one window earlier
  // tokens 8 .. 15 of x are tokens 4 .. 11 of the shifted input; both see full frames
  CHECK(cases::max_rel_diff(ys.narrow(1, 4, 8), y.narrow(1, 8, 8)) < 1e-12);
}

TEST_CASE("rotary: ModelConfig.light_rotary needs an even light_dim_head and defaults to off") {
  nn::ModelConfig c;
  c.num_classes = 4;
  CHECK_FALSE(c.light_rotary);  // what a checkpoint written before the key existed means
  c.light_rotary = true;
  c.light_dim_head = 7;
  CHECK_THROWS_WITH(c.validate(), Contains("'light_dim_head' expected an even value with 'light_rotary'"));
  c.light_dim_head = 8;
  c.validate();
  const auto j = c.to_json();
  CHECK(j.at("light_rotary") == true);
  auto old = j;
  old.erase("light_rotary");
  CHECK_FALSE(nn::ModelConfig::from_json(old).light_rotary);
  auto model = nn::make_model(c);
  bool found = false;
  for (const auto& [name, t] : model->state_dict()) found |= name.find("light_attn.attn_fn.rel_pos.inv_freq") != std::string::npos;
  CHECK(found);
}
