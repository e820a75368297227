// CoLT5 on images (nn/image.h): shapes and layouts, the heavy-off switch, float64 gradchecks of
// the image attention and the routed ViT (straight-through off, so that the routers' gradients
// are checked too), the position embedding and the checks on options and inputs. Parity with
// 0.11.1 is in the golden fixtures image_attention_0111 and vit_0111.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "nn/image.h"
#include "tests/cases/cases.h"
#include "tests/run_program.h"

using namespace colt5;
using namespace colt5::nn;
using doctest::Contains;

namespace {

ConditionalRoutedImageAttentionOptions small_image_attention() {
  ConditionalRoutedImageAttentionOptions o;
  o.num_heavy_tokens_q = 2, o.num_heavy_tokens_kv = 3;
  o.light_dim_head = 4, o.light_heads = 2, o.light_window_size = 2;
  o.heavy_dim_head = 4, o.heavy_heads = 2;
  o.router_straight_through = false;
  o.router_kwargs.eps = 0.5;
  return o;
}

Tensor leaf64(const Shape& s, uint64_t seed) { return cases::leaf(s, DType::Float64, kCPU, seed); }

}  // namespace

TEST_CASE("ConditionalRoutedImageAttention: layouts, the heavy-off switch, float64 gradcheck") {
  Generator g(3);
  ConditionalRoutedImageAttentionOptions o = small_image_attention();
  ConditionalRoutedImageAttention m(8, o, &g);
  m.to(DType::Float64);
  const Tensor x = leaf64({2, 4, 6, 8}, 5);  // [b, H, W, dim]: 2 x 3 windows of 2 x 2
  const Tensor y = m(x);
  CHECK(y.shape() == x.shape());
  // channel_first is the same module on the permuted map
  o.channel_first = true;
  ConditionalRoutedImageAttention cf(8, o, &g);
  cf.to(DType::Float64);
  cf.load_state_dict(m.state_dict());
  CHECK(cases::max_rel_diff(cf(x.permute({0, 3, 1, 2})).permute({0, 2, 3, 1}), y) < 1e-15);
  // the light branch alone sees one window: changing a token of another window changes nothing
  m.heavy_enabled = false;
  const Tensor light = m(x);
  std::vector<double> keep(2 * 4 * 6 * 8, 1.0);  // zero out window (1, 2): rows 2..3, columns 4..5
  for (int b = 0; b < 2; ++b)
    for (int i = 2; i < 4; ++i)
      for (int j = 4; j < 6; ++j)
        for (int c = 0; c < 8; ++c) keep[size_t(((b * 4 + i) * 6 + j) * 8 + c)] = 0.0;
  const Tensor x2 = x.detach() * from_vector(keep, {2, 4, 6, 8});
  CHECK(cases::max_rel_diff(m(x2).narrow(1, 0, 2), light.narrow(1, 0, 2)) == 0.0);
  m.heavy_enabled = true;
  GradcheckResult r = gradcheck([&](const TensorList& in) { return m(in[0]); }, {x});
  INFO(r.message);
  CHECK(r.ok);
}

TEST_CASE("ConditionalRoutedViT: logits, the heavy-off switch, float64 gradcheck, checks") {
  ConditionalRoutedViTOptions o;
  o.image_size = 8, o.patch_size = 2, o.num_classes = 3, o.dim = 8, o.depth = 1, o.channels = 2;
  o.attn_num_heavy_tokens_q = 2, o.attn_num_heavy_tokens_kv = 3, o.attn_heavy_dim_head = 4, o.attn_heavy_heads = 2;
  o.attn_light_dim_head = 4, o.attn_light_heads = 2, o.attn_light_window_size = 2;
  o.ff_num_heavy_tokens = 4, o.ff_heavy_mult = 2;
  o.router_straight_through = false;
  o.default_coor_descent_eps = 0.5;
  Generator g(7);
  ConditionalRoutedViT m(o, &g);
  m.to(DType::Float64);
  const Tensor img = leaf64({2, 2, 8, 8}, 9);
  const Tensor logits = m(img);
  CHECK(logits.shape() == Shape({2, 3}));
  m.set_heavy_enabled(false);
  CHECK(cases::max_rel_diff(m(img), logits) > 1e-6);
  m.set_heavy_enabled(true);
  GradcheckResult r = gradcheck([&](const TensorList& in) { return m(in[0]); }, {img});
  INFO(r.message);
  CHECK(r.ok);
  // state_dict keys are vit.py's
  const auto sd = m.state_dict();
  for (const char* k : {"to_patch_embedding.1.weight", "to_patch_embedding.2.weight", "to_patch_embedding.3.bias",
                        "transformer.layers.0.0.light_attn.to_qkv.weight", "transformer.layers.0.1.router.routing_token",
                        "linear_head.1.weight", "linear_head.2.bias"})
    CHECK_MESSAGE(sd.count(k) == 1, k);

  CHECK_THROWS_WITH_AS(m(leaf64({2, 3, 8, 8}, 1)), Contains("argument 'img' expected shape [batch, 2, 8, 8]"), Error);
  CHECK_THROWS_WITH_AS(m(img.to(DType::Float32)), Contains("argument 'img' expected dtype float64"), Error);
  ConditionalRoutedViTOptions bad = o;
  bad.image_size = 9;
  CHECK_THROWS_WITH_AS(ConditionalRoutedViT{bad}, Contains("'image_size' (9) expected divisible by patch_size (2)"), Error);
  bad = o;
  bad.dim = 6;
  CHECK_THROWS_WITH_AS(ConditionalRoutedViT{bad}, Contains("'dim' expected a multiple of 4"), Error);
  bad = o;
  bad.attn_num_heavy_tokens_q = 4;  // a window has 4 tokens
  CHECK_THROWS_WITH_AS(ConditionalRoutedViT{bad}, Contains("expected < light_window_size^2 = 4"), Error);
}

TEST_CASE("posemb_sincos_2d: vit.py's layout") {
  const Tensor pe = posemb_sincos_2d(2, 3, 8, DType::Float64, kCPU).contiguous();
  REQUIRE(pe.shape() == Shape({2, 3, 8}));
  const double* p = pe.data_ptr<double>();
  // (y, x) = (1, 2), q = 2, omega = (1, 1e-4): sin x, sin(x / 1e4), cos x, ..., sin y, ..., cos y
  const double* r = p + (1 * 3 + 2) * 8;
  CHECK(r[0] == doctest::Approx(std::sin(2.0)));
  CHECK(r[1] == doctest::Approx(std::sin(2e-4)));
  CHECK(r[2] == doctest::Approx(std::cos(2.0)));
  CHECK(r[4] == doctest::Approx(std::sin(1.0)));
  CHECK(r[7] == doctest::Approx(std::cos(1e-4)));
  CHECK_THROWS_WITH_AS(posemb_sincos_2d(2, 2, 6, DType::Float64, kCPU), Contains("multiple of 4"), Error);
}

TEST_CASE("train_image: a short run prints the routed and heavy-off evaluation; bad flags are errors") {
  const std::string exe = std::string(COLT5_BUILD_ROOT) + "/examples/train_image";
  const testing::Run r =
      testing::run_program("COLT5_TRAIN_IMAGE_EXE", exe.c_str(), "--device cpu --steps 20 --batch-size 8 --eval-batches 2");
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(r.output.find("step    20/20") != std::string::npos);
  CHECK(r.output.find("final evaluation (16 validation images)") != std::string::npos);
  CHECK(r.output.find("routed (light + heavy)") != std::string::npos);
  CHECK(r.output.find("heavy branch off") != std::string::npos);
  const testing::Run bad = testing::run_program("COLT5_TRAIN_IMAGE_EXE", exe.c_str(), "--steps 0");
  CHECK(bad.status != 0);
  CHECK(bad.output.find("--steps") != std::string::npos);
  const testing::Run nan = testing::run_program("COLT5_TRAIN_IMAGE_EXE", exe.c_str(), "--lr nan");
  CHECK(nan.status != 0);
}
