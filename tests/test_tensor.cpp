// The Tensor itself: dtypes, devices, construction and host access, geometry and views, dtype
// conversions, creation ops, the Philox generator and printing.
#include <doctest/doctest.h>

#include "tests/fake_cuda.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>

#include "autograd/ops.h"
#include "core/backend.h"
#include "core/format.h"

using namespace colt5;
using colt5::testing::FakeCudaScope;

namespace {

// Mean and (population) standard deviation of a float64 tensor's elements.
std::pair<double, double> mean_std(const Tensor& t) {
  std::vector<double> v = t.to(DType::Float64).to_vector<double>();
  double m = 0;
  for (double x : v) m += x;
  m /= double(v.size());
  double var = 0;
  for (double x : v) var += (x - m) * (x - m);
  return {m, std::sqrt(var / double(v.size()))};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// dtypes and devices

TEST_CASE("dtype: sizes, names, classes") {
  CHECK(dtype_size(DType::Float32) == 4);
  CHECK(dtype_size(DType::Float64) == 8);
  CHECK(dtype_size(DType::Int64) == 8);
  CHECK(dtype_size(DType::Int32) == 4);
  CHECK(dtype_size(DType::Bool) == 1);
  CHECK(std::string(dtype_name(DType::Float32)) == "float32");
  CHECK(std::string(dtype_name(DType::Float64)) == "float64");
  CHECK(std::string(dtype_name(DType::Int64)) == "int64");
  CHECK(std::string(dtype_name(DType::Int32)) == "int32");
  CHECK(std::string(dtype_name(DType::Bool)) == "bool");
  CHECK(is_floating(DType::Float32));
  CHECK(is_floating(DType::Float64));
  CHECK_FALSE(is_floating(DType::Int64));
  CHECK(is_integral(DType::Int32));
  CHECK_FALSE(is_integral(DType::Bool));
  CHECK(Tensor::empty({2}, DType::Float64).element_size() == 8);
}

TEST_CASE("device: parsing and names") {
  CHECK(Device("cpu") == kCPU);
  CHECK(Device("cpu").is_cpu());
  CHECK(Device("cuda") == cuda_device(0));
  CHECK(Device("cuda:1").is_cuda());
  CHECK(Device("cuda:1").index == 1);
  CHECK(Device("cuda:12").index == 12);
  CHECK(Device("cuda:1").name() == "cuda:1");
  CHECK(kCPU.name() == "cpu");
  CHECK(Device("cuda:0") != Device("cuda:1"));
  for (const char* bad : {"", "gpu", "CPU", "cuda:", "cuda:x", "cuda:1a", "cuda1", "cpu:0", "cuda:-1"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(Device(std::string(bad)), Error);
  }
  CHECK_THROWS_WITH_AS(Device(std::string("gpu")), doctest::Contains("\"gpu\""), Error);
}

// ---------------------------------------------------------------------------------------------
// construction, host access, geometry

TEST_CASE("tensor: empty, from_vector, to_vector, item") {
  Tensor e = Tensor::empty({2, 3, 4}, DType::Int32);
  CHECK(e.shape() == Shape{2, 3, 4});
  CHECK(e.dim() == 3);
  CHECK(e.numel() == 24);
  CHECK(e.dtype() == DType::Int32);
  CHECK(e.device() == kCPU);
  CHECK(e.size(-1) == 4);
  CHECK_THROWS_AS(e.size(3), Error);
  CHECK_THROWS_AS(Tensor::empty({2, -1}), Error);

  Tensor z = Tensor::empty({0, 5});
  CHECK(z.numel() == 0);
  CHECK(z.to_vector<float>().empty());

  Tensor a = from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(a.dtype() == DType::Float64);
  CHECK(a.shape() == Shape{2, 3});
  CHECK(a.to_vector<double>() == std::vector<double>{1, 2, 3, 4, 5, 6});
  CHECK(from_vector<int64_t>({7, -8}, {2}).to_vector<int64_t>() == std::vector<int64_t>{7, -8});
  CHECK(from_vector<int32_t>({3}, {1, 1}).item<int32_t>() == 3);
  CHECK(from_vector<bool>({true, false, true}, {3}).to_vector<bool>() == std::vector<bool>{true, false, true});
  CHECK_THROWS_WITH_AS(from_vector<float>({1, 2, 3}, {2, 2}), doctest::Contains("values"), Error);

  Tensor s = scalar_tensor(2.5, DType::Float64);
  CHECK(s.dim() == 0);
  CHECK(s.numel() == 1);
  CHECK(s.item<double>() == 2.5);
  CHECK(s.item_double() == 2.5);
  CHECK(from_vector<int64_t>({-4}, {1}).item_double() == -4.0);
  CHECK_THROWS_WITH_AS(a.item<double>(), doctest::Contains("one element"), Error);
  CHECK_THROWS_WITH_AS(a.to_vector<float>(), doctest::Contains("float32"), Error);
  CHECK_THROWS_AS(a.data_ptr<float>(), Error);
  CHECK(a.data_ptr<double>()[4] == 5.0);
  CHECK_FALSE(Tensor().defined());
  CHECK_THROWS_WITH_AS(Tensor().shape(), doctest::Contains("undefined"), Error);
}

TEST_CASE("tensor: contiguous strides and is_contiguous") {
  CHECK(contiguous_strides({2, 3, 4}) == Shape{12, 4, 1});
  CHECK(contiguous_strides({}) == Shape{});
  CHECK(contiguous_strides({5}) == Shape{1});
  CHECK(contiguous_strides({2, 0, 3}) == Shape{3, 3, 1});
  Tensor t = Tensor::empty({2, 3, 4});
  CHECK(t.strides() == Shape{12, 4, 1});
  CHECK(t.is_contiguous());
  CHECK_FALSE(t.transpose(0, 2).is_contiguous());
  CHECK(t.narrow(0, 1, 1).is_contiguous());    // a block of whole rows
  CHECK_FALSE(t.narrow(2, 1, 2).is_contiguous());  // a column window
  CHECK(t.unsqueeze(0).is_contiguous());
  CHECK_FALSE(Tensor::empty({3, 1}).expand({3, 4}).is_contiguous());
  // The stride of a size-1 dim does not matter.
  CHECK(Tensor::make_view(t, {2, 1, 12}, {12, 99, 1}, 0).is_contiguous());
  CHECK(t.transpose(0, 2).contiguous().is_contiguous());
  CHECK(Tensor::empty({}).is_contiguous());
}

TEST_CASE("tensor: views share storage") {
  Tensor a = arange(12).reshape({3, 4});
  Tensor tr = a.t();
  Tensor nr = a.narrow(1, 1, 2);
  Tensor sel = a.select(0, 2);
  Tensor ex = a.narrow(0, 0, 1).expand({5, 4});
  for (const Tensor* v : {&tr, &nr, &sel, &ex}) CHECK(v->impl()->storage == a.impl()->storage);
  CHECK(tr.shape() == Shape{4, 3});
  CHECK(tr.strides() == Shape{1, 4});
  CHECK(nr.offset() == 1);
  CHECK(sel.offset() == 8);
  CHECK(sel.to_vector<int64_t>() == std::vector<int64_t>{8, 9, 10, 11});
  CHECK(nr.to_vector<int64_t>() == std::vector<int64_t>{1, 2, 5, 6, 9, 10});
  CHECK(tr.to_vector<int64_t>() == std::vector<int64_t>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11});
  CHECK(ex.strides() == Shape{0, 1});

  // A write through a view is seen by the base and by every other view.
  Tensor window = a.narrow(1, 1, 2);
  ops::fill_(window, -1.0);
  CHECK(a.to_vector<int64_t>() == std::vector<int64_t>{0, -1, -1, 3, 4, -1, -1, 7, 8, -1, -1, 11});
  CHECK(tr.to_vector<int64_t>()[1] == 4);
  CHECK(tr.to_vector<int64_t>()[3] == -1);

  // A copy does not share.
  Tensor c = a.clone();
  CHECK(c.impl()->storage != a.impl()->storage);
  Tensor cont = tr.contiguous();
  CHECK(cont.impl()->storage != a.impl()->storage);
  CHECK(a.contiguous().impl() == a.impl());  // already contiguous: the same tensor
  CHECK(a.reshape({12}).impl()->storage == a.impl()->storage);  // reshape of contiguous is a view
}

TEST_CASE("tensor: to(dtype) conversions") {
  Tensor f = from_vector<float>({1.7f, -1.7f, 2.5f, -0.5f, 0.0f}, {5});
  // float -> int truncates toward zero, as a C++ cast (and torch) does.
  CHECK(f.to(DType::Int64).to_vector<int64_t>() == std::vector<int64_t>{1, -1, 2, 0, 0});
  CHECK(f.to(DType::Int32).to_vector<int32_t>() == std::vector<int32_t>{1, -1, 2, 0, 0});
  // Anything non-zero is true.
  CHECK(f.to(DType::Bool).to_vector<bool>() == std::vector<bool>{true, true, true, true, false});
  Tensor b = from_vector<bool>({true, false}, {2});
  CHECK(b.to(DType::Float32).to_vector<float>() == std::vector<float>{1.0f, 0.0f});
  CHECK(b.to(DType::Int64).to_vector<int64_t>() == std::vector<int64_t>{1, 0});
  Tensor i = from_vector<int64_t>({-3, 1000000007}, {2});
  CHECK(i.to(DType::Float64).to_vector<double>() == std::vector<double>{-3.0, 1000000007.0});
  Tensor d = from_vector<double>({0.1, 1e300}, {2});
  std::vector<float> df = d.narrow(0, 0, 1).to(DType::Float32).to_vector<float>();
  CHECK(df[0] == 0.1f);
  CHECK(std::isinf(d.to(DType::Float32).to_vector<float>()[1]));
  // Same dtype: the tensor itself.
  CHECK(f.to(DType::Float32).impl() == f.impl());
  // Non-contiguous source.
  Tensor t = arange(6).reshape({2, 3}).t();
  CHECK(t.to(DType::Float64).to_vector<double>() == std::vector<double>{0, 3, 1, 4, 2, 5});
}

// ---------------------------------------------------------------------------------------------
// creation

TEST_CASE("creation: arange") {
  Tensor a = arange(5);
  CHECK(a.dtype() == DType::Int64);
  CHECK(a.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3, 4});
  CHECK(arange(2.0, 5.0).to_vector<int64_t>() == std::vector<int64_t>{2, 3, 4});
  CHECK(arange(0.0, 1.0, 0.25, DType::Float32).to_vector<float>() == std::vector<float>{0.0f, 0.25f, 0.5f, 0.75f});
  CHECK(arange(0.0, 1.0, 0.3, DType::Float64).numel() == 4);  // 0, .3, .6, .9
  CHECK(arange(5.0, 0.0, -2.0).to_vector<int64_t>() == std::vector<int64_t>{5, 3, 1});
  CHECK(arange(1.0, -1.0, -0.5, DType::Float64).to_vector<double>() == std::vector<double>{1.0, 0.5, 0.0, -0.5});
  CHECK(arange(3.0, 3.0).numel() == 0);
  CHECK(arange(3.0, 1.0).numel() == 0);   // positive step away from end: empty
  CHECK(arange(1.0, 3.0, -1.0).numel() == 0);
  CHECK(arange(0).numel() == 0);
  CHECK(arange(3.0, 1.0).shape() == Shape{0});
  CHECK_THROWS_WITH_AS(arange(0.0, 1.0, 0.0), doctest::Contains("step"), Error);
  CHECK_THROWS_AS(arange(0.0, INFINITY), Error);
}

TEST_CASE("creation: zeros, ones, full and the *_like forms") {
  CHECK(zeros({2, 2}).to_vector<float>() == std::vector<float>(4, 0.0f));
  CHECK(ones({3}, DType::Int64).to_vector<int64_t>() == std::vector<int64_t>{1, 1, 1});
  Tensor f = full({2, 3}, -2.5, DType::Float64);
  CHECK(f.shape() == Shape{2, 3});
  CHECK(f.to_vector<double>() == std::vector<double>(6, -2.5));
  CHECK(full({2}, 1.0, DType::Bool).to_vector<bool>() == std::vector<bool>{true, true});
  CHECK(zeros({}).dim() == 0);
  CHECK(zeros({0, 4}).numel() == 0);

  Tensor proto = arange(6).reshape({2, 3}).to(DType::Float64).t();  // non-contiguous prototype
  Tensor zl = zeros_like(proto), ol = ones_like(proto), fl = full_like(proto, 7.0);
  for (const Tensor* t : {&zl, &ol, &fl}) {
    CHECK(t->shape() == Shape{3, 2});
    CHECK(t->dtype() == DType::Float64);
    CHECK(t->device() == kCPU);
    CHECK(t->is_contiguous());
  }
  CHECK(zl.to_vector<double>() == std::vector<double>(6, 0.0));
  CHECK(ol.to_vector<double>() == std::vector<double>(6, 1.0));
  CHECK(fl.to_vector<double>() == std::vector<double>(6, 7.0));
  CHECK(full_like(arange(3), 2.9).to_vector<int64_t>() == std::vector<int64_t>{2, 2, 2});
}

// ---------------------------------------------------------------------------------------------
// random numbers

TEST_CASE("random: same seed gives the same numbers, different seeds differ") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    CAPTURE(dt);
    Generator g1(42), g2(42), g3(43);
    std::vector<double> a = randn({1000}, dt, kCPU, &g1).to(DType::Float64).to_vector<double>();
    std::vector<double> b = randn({1000}, dt, kCPU, &g2).to(DType::Float64).to_vector<double>();
    std::vector<double> c = randn({1000}, dt, kCPU, &g3).to(DType::Float64).to_vector<double>();
    CHECK(a == b);
    int same = 0;
    for (size_t i = 0; i < a.size(); ++i) same += a[i] == c[i];
    CHECK(same < 5);
  }
  Generator g1(7), g2(7);
  CHECK(rand({64}, DType::Float64, kCPU, &g1).to_vector<double>() ==
        rand({64}, DType::Float64, kCPU, &g2).to_vector<double>());
  CHECK(randint(0, 1000, {64}, DType::Int64, kCPU, &g1).to_vector<int64_t>() ==
        randint(0, 1000, {64}, DType::Int64, kCPU, &g2).to_vector<int64_t>());
}

TEST_CASE("random: the generator offset advances, so consecutive draws differ") {
  Generator g(5);
  CHECK(g.seed() == 5);
  CHECK(g.offset() == 0);
  std::vector<double> first = randn({100}, DType::Float64, kCPU, &g).to_vector<double>();
  CHECK(g.offset() == 100);
  std::vector<double> second = randn({100}, DType::Float64, kCPU, &g).to_vector<double>();
  CHECK(g.offset() == 200);
  CHECK(first != second);
  // A draw of n numbers is the continuation of the counter stream: two draws of 50 equal one of 100.
  Generator h(5);
  std::vector<double> part1 = randn({50}, DType::Float64, kCPU, &h).to_vector<double>();
  std::vector<double> part2 = randn({50}, DType::Float64, kCPU, &h).to_vector<double>();
  part1.insert(part1.end(), part2.begin(), part2.end());
  CHECK(part1 == first);
  // Rewinding the offset repeats a draw.
  g.set_offset(100);
  CHECK(randn({100}, DType::Float64, kCPU, &g).to_vector<double>() == second);
  // An empty draw reserves nothing.
  Generator e(1);
  CHECK(randn({0, 3}, DType::Float32, kCPU, &e).numel() == 0);
  CHECK(e.offset() == 0);
  // manual_seed on a generator resets its offset.
  g.manual_seed(5);
  CHECK(g.offset() == 0);
  CHECK(randn({100}, DType::Float64, kCPU, &g).to_vector<double>() == first);
}

TEST_CASE("random: randn has mean 0 and std 1") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    CAPTURE(dt);
    Generator g(2024);
    Tensor x = randn({100000}, dt, kCPU, &g);
    CHECK(x.dtype() == dt);
    auto [m, s] = mean_std(x);
    // Standard error of the mean is 1/sqrt(1e5) ~ 0.0032, of the std ~ 0.0022.
    CHECK(std::fabs(m) < 0.015);
    CHECK(std::fabs(s - 1.0) < 0.01);
    std::vector<double> v = x.to(DType::Float64).to_vector<double>();
    for (double e : v) REQUIRE(std::isfinite(e));
    // About 68.3% within one standard deviation.
    const double within = double(std::count_if(v.begin(), v.end(), [](double e) { return std::fabs(e) < 1; }));
    CHECK(std::fabs(within / 1e5 - 0.6827) < 0.01);
  }
  CHECK_THROWS_WITH_AS(randn({2}, DType::Int64), doctest::Contains("dtype"), Error);
}

TEST_CASE("random: rand is uniform in [0, 1)") {
  Generator g(99);
  std::vector<float> f = rand({200000}, DType::Float32, kCPU, &g).to_vector<float>();
  CHECK(*std::min_element(f.begin(), f.end()) >= 0.0f);
  CHECK(*std::max_element(f.begin(), f.end()) < 1.0f);
  CHECK(std::none_of(f.begin(), f.end(), [](float v) { return v == 1.0f; }));
  auto [mf, sf] = mean_std(from_vector(f, {int64_t(f.size())}));
  CHECK(std::fabs(mf - 0.5) < 0.005);
  CHECK(std::fabs(sf - std::sqrt(1.0 / 12.0)) < 0.005);

  std::vector<double> d = rand({100000}, DType::Float64, kCPU, &g).to_vector<double>();
  CHECK(*std::min_element(d.begin(), d.end()) >= 0.0);
  CHECK(*std::max_element(d.begin(), d.end()) < 1.0);
  auto [md, sd] = mean_std(from_vector(d, {int64_t(d.size())}));
  CHECK(std::fabs(md - 0.5) < 0.005);
  CHECK(std::fabs(sd - std::sqrt(1.0 / 12.0)) < 0.005);
  // float64 draws use more than float32's 24 bits.
  CHECK(std::any_of(d.begin(), d.end(), [](double v) { return double(float(v)) != v; }));
  // Every decile gets about a tenth.
  std::vector<int> bins(10, 0);
  for (double v : d) ++bins[size_t(v * 10)];
  for (int b : bins) CHECK(std::abs(b - 10000) < 500);
}

TEST_CASE("random: randint covers [low, high) and nothing else") {
  Generator g(3);
  std::vector<int64_t> v = randint(-3, 4, {10000}, DType::Int64, kCPU, &g).to_vector<int64_t>();
  std::set<int64_t> seen(v.begin(), v.end());
  CHECK(seen == std::set<int64_t>{-3, -2, -1, 0, 1, 2, 3});
  std::vector<int32_t> w = randint(10, 12, {1000}, DType::Int32, kCPU, &g).to_vector<int32_t>();
  CHECK(std::set<int32_t>(w.begin(), w.end()) == std::set<int32_t>{10, 11});
  CHECK(randint(5, 6, {20}, DType::Int64, kCPU, &g).to_vector<int64_t>() == std::vector<int64_t>(20, 5));
  CHECK_THROWS_WITH_AS(randint(4, 4, {2}), doctest::Contains("low"), Error);
  CHECK_THROWS_WITH_AS(randint(0, 4, {2}, DType::Float32), doctest::Contains("dtype"), Error);
}

TEST_CASE("random: manual_seed makes the default generator repeat") {
  manual_seed(123);
  CHECK(default_generator().seed() == 123);
  CHECK(default_generator().offset() == 0);
  std::vector<float> a = randn({32}).to_vector<float>();
  std::vector<float> a2 = rand({8}).to_vector<float>();
  CHECK(default_generator().offset() == 40);
  manual_seed(123);
  CHECK(randn({32}).to_vector<float>() == a);
  CHECK(rand({8}).to_vector<float>() == a2);
  manual_seed(124);
  CHECK(randn({32}).to_vector<float>() != a);
  // The default generator and an explicit one with the same seed agree.
  manual_seed(77);
  Generator g(77);
  CHECK(randn({16}, DType::Float64).to_vector<double>() == randn({16}, DType::Float64, kCPU, &g).to_vector<double>());
}

// ---------------------------------------------------------------------------------------------
// printing

TEST_CASE("format: small tensors, exact text") {
  Tensor a = from_vector<float>({1, 2, 3, 4}, {2, 2});
  const std::string a_text =
      "tensor([[1.0000, 2.0000],\n"
      "        [3.0000, 4.0000]], shape=[2, 2], dtype=float32, device=cpu)";
  CHECK(a.to_string() == a_text);
  CHECK(fmt::format("{}", a) == a_text);

  CHECK(from_vector<int64_t>({1, -2, 30}, {3}).to_string() == "tensor([ 1, -2, 30], shape=[3], dtype=int64, device=cpu)");
  CHECK(from_vector<bool>({true, false}, {2}).to_string() ==
        "tensor([ True, False], shape=[2], dtype=bool, device=cpu)");
  CHECK(scalar_tensor(3.5).to_string() == "tensor(3.5000, shape=[], dtype=float32, device=cpu)");
  CHECK(scalar_tensor(-7, DType::Int32).to_string() == "tensor(-7, shape=[], dtype=int32, device=cpu)");
  CHECK(Tensor::empty({0, 3}).to_string() == "tensor([], shape=[0, 3], dtype=float32, device=cpu)");
  CHECK(Tensor::empty({0}, DType::Int64).to_string() == "tensor([], shape=[0], dtype=int64, device=cpu)");
  CHECK(from_vector<double>({-1.5, 10.25}, {2, 1}).to_string() ==
        "tensor([[-1.5000],\n"
        "        [10.2500]], shape=[2, 1], dtype=float64, device=cpu)");
  CHECK(arange(8).reshape({2, 2, 2}).to_string() ==
        "tensor([[[0, 1],\n"
        "         [2, 3]],\n"
        "\n"
        "        [[4, 5],\n"
        "         [6, 7]]], shape=[2, 2, 2], dtype=int64, device=cpu)");
  // Views print their logical order.
  CHECK(arange(6).reshape({2, 3}).t().to_string() ==
        "tensor([[0, 3],\n"
        "        [1, 4],\n"
        "        [2, 5]], shape=[3, 2], dtype=int64, device=cpu)");
  // Tiny or huge values switch the whole tensor to scientific notation.
  CHECK(from_vector<double>({1e-5, 1.0}, {2}).to_string() ==
        "tensor([1.0000e-05, 1.0000e+00], shape=[2], dtype=float64, device=cpu)");
  CHECK(from_vector<double>({0.0, NAN, INFINITY, -INFINITY}, {4}).to_string() ==
        "tensor([0.0000,    nan,    inf,   -inf], shape=[4], dtype=float64, device=cpu)");
  Tensor leaf = from_vector<double>({0.5}, {1});
  leaf.requires_grad_();
  CHECK(leaf.to_string() == "tensor([0.5000], shape=[1], dtype=float64, device=cpu, requires_grad=True)");
  CHECK(Tensor().to_string() == "tensor(undefined)");
  // Format specs apply to the whole text.
  CHECK(fmt::format("{:>60}", scalar_tensor(1.0)) ==
        "         tensor(1.0000, shape=[], dtype=float32, device=cpu)");
  // Custom precision.
  PrintOptions opt;
  opt.precision = 2;
  CHECK(format_tensor(from_vector<float>({0.123f, 2.0f}, {2}), opt) ==
        "tensor([0.12, 2.00], shape=[2], dtype=float32, device=cpu)");
}

TEST_CASE("format: large tensors are summarised with ...") {
  Tensor big = arange(10000).reshape({100, 100});
  const std::string text = fmt::format("{}", big);
  CHECK(text ==
        "tensor([[   0,    1,    2, ...,   97,   98,   99],\n"
        "        [ 100,  101,  102, ...,  197,  198,  199],\n"
        "        [ 200,  201,  202, ...,  297,  298,  299],\n"
        "        ...,\n"
        "        [9700, 9701, 9702, ..., 9797, 9798, 9799],\n"
        "        [9800, 9801, 9802, ..., 9897, 9898, 9899],\n"
        "        [9900, 9901, 9902, ..., 9997, 9998, 9999]], shape=[100, 100], dtype=int64, device=cpu)");

  Tensor fbig = randn({100, 100}, DType::Float32);
  const std::string ftext = fbig.to_string();
  CHECK(std::count(ftext.begin(), ftext.end(), '\n') == 6);  // 6 rows and one "..." line
  CHECK(ftext.find("...") != std::string::npos);
  CHECK(ftext.find("shape=[100, 100], dtype=float32, device=cpu)") != std::string::npos);

  // Up to the threshold (1000 elements) everything is shown; past it, long dims are cut.
  const std::string full_text = arange(1000).to_string();
  CHECK(full_text.find("...") == std::string::npos);
  CHECK(full_text.find(" 999]") != std::string::npos);
  CHECK(arange(1001).to_string() ==
        "tensor([   0,    1,    2, ...,  998,  999, 1000], shape=[1001], dtype=int64, device=cpu)");
  // Short dims of a large tensor stay whole.
  const std::string mixed = arange(2000).reshape({2, 1000}).to_string();
  CHECK(mixed == "tensor([[   0,    1,    2, ...,  997,  998,  999],\n"
                 "        [1000, 1001, 1002, ..., 1997, 1998, 1999]], shape=[2, 1000], dtype=int64, device=cpu)");
  PrintOptions opt;
  opt.threshold = 5;
  opt.edgeitems = 1;
  CHECK(format_tensor(arange(6), opt) == "tensor([0, ..., 5], shape=[6], dtype=int64, device=cpu)");
}

TEST_CASE("format: CUDA tensors are copied to the host") {
  FakeCudaScope scope;  // host memory posing as cuda:0 when the build has no CUDA backend
  Tensor host = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor dev;
  try {
    dev = Tensor::empty({2, 3}, DType::Float32, cuda_device(0));
  } catch (const Error& e) {
    MESSAGE(std::string("skipped: no usable CUDA device: ").append(e.what()));
    return;
  }
  copy_bytes(dev.raw_data(), dev.device(), host.raw_data(), kCPU, 6 * sizeof(float));
  CHECK(dev.to_string() ==
        "tensor([[1.0000, 2.0000, 3.0000],\n"
        "        [4.0000, 5.0000, 6.0000]], shape=[2, 3], dtype=float32, device=cuda:0)");
  CHECK(dev.to_vector<float>() == host.to_vector<float>());
}
