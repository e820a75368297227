// Trainer (see trainer.h).
#include "trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>

#include "autograd/ops.h"
#include "core/autocast.h"
#include "core/backend.h"
#include "core/ops/copy.h"
#include "nn/json_read.h"
#include "nn/safetensors.h"

namespace colt5::train {

Device resolve_device(const std::string& name) {
  if (name == "cpu") return kCPU;
  if (name == "cuda") {
    COLT5_CHECK(cuda_is_available(), "flag --device cuda: no CUDA device is available (no GPU, no driver, or a ",
                "build without CUDA); use --device cpu");
    return cuda_device(0);
  }
  COLT5_CHECK(name == "auto", "flag --device: expected auto, cpu or cuda, got \"", name, "\"");
  return cuda_is_available() ? cuda_device(0) : kCPU;
}

Trainer::Trainer(const TrainConfig& cfg) : cfg_(cfg), device_(kCPU) {
  cfg_.derive();
  cfg_.validate();
  device_ = resolve_device(cfg_.device);
  if (cfg_.task == "recall") {
    recall_.emplace(cfg_.recall);
  } else {
    // Stored absolute, so that a checkpoint resumes from any working directory.
    cfg_.data_path = std::filesystem::absolute(cfg_.data_path).lexically_normal().string();
    text_.emplace(nn::TextDataset::from_file(cfg_.data_path, cfg_.seq_len, cfg_.val_fraction));
    const int64_t size = static_cast<int64_t>(text_->bytes().size());
    const std::string hash = data_fingerprint(text_->bytes());
    if (cfg_.data_size == 0 && cfg_.data_hash.empty()) {  // a new run: remember what it trains on
      cfg_.data_size = size;
      cfg_.data_hash = hash;
    }
    COLT5_CHECK(size == cfg_.data_size && hash == cfg_.data_hash, "flag --data: '", cfg_.data_path, "' (", size,
                " bytes, hash ", hash, ") is not the file this run was trained on (", cfg_.data_size, " bytes, hash ",
                cfg_.data_hash, ")");
  }
  Generator gen(cfg_.seed);
  model_ = nn::make_model(cfg_.model, &gen);
  model_->to(device_);
  nn::AdamWOptions o;
  o.lr = cfg_.lr;
  o.beta1 = cfg_.beta1;
  o.beta2 = cfg_.beta2;
  o.weight_decay = cfg_.weight_decay;
  opt_ = std::make_unique<nn::AdamW>(nn::param_groups_for(*model_, cfg_.weight_decay), o);
}

double Trainer::chance() const { return recall_ ? recall_->chance() : 0.0; }

nn::Batch Trainer::make_batch(nn::Split split, uint64_t index, bool to_device) const {
  nn::Batch b = recall_ ? recall_->batch(split, cfg_.batch_size, cfg_.seed, index)
                        : text_->batch(split, cfg_.batch_size, cfg_.seed, index);
  if (!to_device) return b;
  return {b.inputs.to(device_), b.targets.to(device_)};
}

Tensor Trainer::loss_of(const Tensor& logits, const Tensor& targets) const {
  if (recall_) {  // [b, C] vs [b], or [b, M, C] vs [b, M]
    const int64_t c = logits.size(-1);
    return logits.dim() == 2 ? cross_entropy(logits, targets) : cross_entropy(logits.reshape({-1, c}), targets.reshape({-1}));
  }
  const int64_t v = logits.size(-1);
  return cross_entropy(logits.reshape({-1, v}), targets.reshape({-1}));  // every position
}

void Trainer::set_cuda_graph(bool on) {
  COLT5_CHECK(!on || device_.is_cuda(), "flag --cuda-graph: CUDA graphs need a GPU, and this run is on ", device_.name());
  graph_wanted_ = on;
  if (!on) graph_.reset();
}

std::vector<nn::Batch> Trainer::train_batches(int64_t step, bool to_device) const {
  std::vector<nn::Batch> batches;
  for (int64_t i = 0; i < cfg_.grad_accum; ++i)
    batches.push_back(make_batch(nn::Split::Train, static_cast<uint64_t>(step * cfg_.grad_accum + i), to_device));
  return batches;
}

void Trainer::stage_graph_batches(int64_t step) {
  const std::vector<nn::Batch> host = train_batches(step, false);
  for (size_t i = 0; i < host.size(); ++i) {
    ops::copy_(graph_batches_[i].inputs, host[i].inputs);  // in place: the graph reads these addresses
    ops::copy_(graph_batches_[i].targets, host[i].targets);
  }
  staged_step_ = step;
}

Tensor Trainer::forward(const Tensor& inputs) const {
  AutocastGuard guard(cfg_.precision == "bf16" ? DType::BFloat16 : DType::Float32);
  return model_->forward(inputs);
}

Tensor Trainer::step_on(const std::vector<nn::Batch>& batches) {
  const double k = static_cast<double>(batches.size());
  Tensor loss_sum;
  for (const nn::Batch& b : batches) {
    const Tensor loss = loss_of(forward(b.inputs), b.targets);
    (loss * (1.0 / k)).backward();
    const Tensor l64 = loss.detach().to(DType::Float64) / k;
    loss_sum = loss_sum.defined() ? loss_sum + l64 : l64;
  }
  const double max_norm = cfg_.clip > 0 ? cfg_.clip : std::numeric_limits<double>::infinity();
  const Tensor gnorm = nn::clip_grad_norm_(model_->parameters(), max_norm);
  opt_->step();
  opt_->zero_grad();
  return stack({loss_sum.reshape({1}), gnorm.reshape({1}).to(device_)}, 0).reshape({2});
}

StepStats Trainer::finish_step(const Tensor& stats, const std::vector<nn::Batch>& batches, double lr,
                               std::chrono::steady_clock::time_point t0, bool graphed) {
  const std::vector<double> v = stats.to(kCPU).contiguous().to_vector<double>();  // the step's one wait
  StepStats st;
  st.loss = v[0], st.grad_norm = v[1], st.lr = lr, st.graphed = graphed;
  for (const nn::Batch& b : batches) st.tokens += b.inputs.numel();
  COLT5_CHECK(std::isfinite(st.loss), "training diverged at step ", step_ + 1, ": the loss is ", st.loss,
              " (try a lower --lr, or --clip)");
  ++step_;
  st.step = step_;
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  HistoryRow row;
  row.step = step_, row.train_loss = st.loss, row.grad_norm = st.grad_norm, row.lr = st.lr;
  history_.push_back(row);
  return st;
}

// Capture the step on the tensors of graph_batches_; false (graph_status_ says why) if it fails.
bool Trainer::try_capture() {
  graph_batches_ = train_batches(step_, true);  // fresh device tensors, kept: the graph reads them
  staged_step_ = step_;
  opt_->stage_lr();  // the capture's step() must find the learning rate staged already
  try {
    graph_ = capture_graph(device_, [&] { graph_stats_ = step_on(graph_batches_); });
  } catch (const Error& e) {
    graph_.reset();
    graph_stats_ = Tensor();
    graph_batches_.clear();
    graph_wanted_ = false;
    graph_status_ = str("capture failed: ", e.what());
    return false;
  }
  graph_status_ = str("captured (", graph_->nodes(), " nodes)");
  graph_fresh_ = true;
  return true;
}

StepStats Trainer::train_step() {
  const auto t0 = std::chrono::steady_clock::now();
  const double lr = nn::warmup_cosine_lr(step_, std::min(cfg_.warmup, cfg_.steps), cfg_.steps, cfg_.lr, cfg_.min_lr);
  opt_->set_lr(lr);
  model_->train();
  constexpr int64_t kWarmup = 2;  // ordinary steps before a capture: optimizer state, caches, cuBLAS set-up
  if (graph_wanted_ && !graph_ && eager_steps_ >= kWarmup) try_capture();
  if (graph_) {
    if (!graph_fresh_) {  // the capture itself prepared the first replay's batches and lr
      if (staged_step_ != step_) stage_graph_batches(step_);
      opt_->stage_lr();
    }
    graph_->replay();
    if (!graph_fresh_) opt_->count_replayed_step();
    graph_fresh_ = false;
    // The next step's batches are made on the host while the GPU runs this one, and their copies
    // queued behind the replay (stream order: they land after it has read this step's). The
    // batches depend only on the step number, so a step that does not come costs host work only.
    stage_graph_batches(step_ + 1);
    return finish_step(graph_stats_, graph_batches_, lr, t0, true);
  }
  const std::vector<nn::Batch> batches = train_batches(step_, true);
  const Tensor stats = step_on(batches);
  ++eager_steps_;
  return finish_step(stats, batches, lr, t0, false);
}

EvalResult Trainer::evaluate(bool heavy, std::optional<int64_t> batches) {
  NoGradGuard no_grad;
  model_->eval();
  model_->set_heavy_enabled(heavy);
  EvalResult r;
  int64_t correct = 0;
  const int64_t nb = batches.value_or(cfg_.eval_batches);
  for (int64_t i = 0; i < nb; ++i) {
    const nn::Batch b = make_batch(nn::Split::Val, static_cast<uint64_t>(i));
    const Tensor logits = forward(b.inputs);
    r.loss += loss_of(logits, b.targets).item_double() / static_cast<double>(nb);
    if (recall_) {
      const auto pred = argmax(logits, -1).to(kCPU).contiguous().to_vector<int64_t>();
      const auto want = b.targets.to(kCPU).contiguous().to_vector<int64_t>();
      for (size_t j = 0; j < want.size(); ++j) correct += pred[j] == want[j];
      r.questions += b.targets.numel();
    }
    r.samples += b.inputs.size(0);
  }
  if (recall_) r.accuracy = static_cast<double>(correct) / static_cast<double>(r.questions);
  model_->set_heavy_enabled(true);
  model_->train();
  return r;
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

namespace {

nlohmann::json history_to_json(const std::vector<HistoryRow>& h) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& r : h)
    rows.push_back({r.step, r.train_loss, r.grad_norm, r.lr, r.val_loss ? nlohmann::json(*r.val_loss) : nullptr,
                    r.val_accuracy ? nlohmann::json(*r.val_accuracy) : nullptr});
  return rows;
}

std::vector<HistoryRow> history_from_json(const nlohmann::json& rows, const std::string& path) {
  COLT5_CHECK(rows.is_array(), "checkpoint '", path, "': metadata entry 'colt5.history' is not a JSON array");
  std::vector<HistoryRow> h;
  for (size_t i = 0; i < rows.size(); ++i) {
    const nlohmann::json& r = rows[i];
    auto bad = [&](const char* what) {
      fail(str("checkpoint '", path, "': metadata entry 'colt5.history', row ", i, ": ", what, " (got ",
               nn::json_excerpt(r), ")"));
    };
    if (!r.is_array() || r.size() != 6) bad("expected 6 values [step, loss, grad_norm, lr, val_loss, val_accuracy]");
    if (!r[0].is_number_integer()) bad("the step is not an integer");
    for (size_t k = 1; k < 4; ++k)
      if (!r[k].is_number()) bad("loss, grad_norm and lr must be numbers");
    for (size_t k = 4; k < 6; ++k)
      if (!r[k].is_null() && !r[k].is_number()) bad("val_loss and val_accuracy must be numbers or null");
    HistoryRow row;
    row.step = r[0].get<int64_t>(), row.train_loss = r[1].get<double>(), row.grad_norm = r[2].get<double>();
    row.lr = r[3].get<double>();
    if (!r[4].is_null()) row.val_loss = r[4].get<double>();
    if (!r[5].is_null()) row.val_accuracy = r[5].get<double>();
    h.push_back(row);
  }
  return h;
}

// The metadata entry `key`, which must be there.
const std::string& meta(const nn::Metadata& m, const std::string& key, const std::string& path) {
  auto it = m.find(key);
  COLT5_CHECK(it != m.end(), "checkpoint '", path, "': metadata entry '", key, "' is missing (not a file written ",
              "by examples/train?)");
  return it->second;
}

nlohmann::json parse_json(const std::string& text, const std::string& key, const std::string& path) {
  return nn::parse_json_untrusted(text, str("checkpoint '", path, "': metadata entry '", key, "'"));
}

// Every floating tensor of `sd` (names under `prefix`) holds finite numbers: a checkpoint with a
// NaN or an infinity in it would train or generate garbage without a word.
void check_finite(const nn::StateDict& sd, const std::string& prefix, const std::string& path) {
  for (const auto& [name, t] : sd) {
    if (!is_floating(t.dtype())) continue;
    const Tensor c = t.to(kCPU).to(DType::Float64).contiguous();
    const double* v = c.data_ptr<double>();
    for (int64_t i = 0, n = c.numel(); i < n; ++i)
      COLT5_CHECK(std::isfinite(v[i]), "checkpoint '", path, "': tensor '", prefix, name, "' holds ", v[i],
                  " at element ", i, " (a run that diverged? only finite weights can be used)");
  }
}

// AdamW's state as Trainer writes it: "step" (= colt5.step), and for each parameter that has been
// updated, all of "state.<i>.step" (in [1, step]), ".exp_avg" and ".exp_avg_sq" (>= 0); a
// parameter that never had a gradient (the LM's query router, which it never uses) has none.
// `count` is the number of optim.* tensors the writer recorded (colt5.optim_tensors), so that a
// file missing a whole parameter's state is caught too; files written before that entry existed
// give -1 and are held to the rest. A checkpoint that fails this would resume with fresh moments
// and a reset bias correction: a different run, silently.
void check_optimizer_state(const nn::StateDict& st, int64_t step, size_t num_params, int64_t count,
                           const std::string& path) {
  auto scalar = [&](const std::string& name) {
    auto it = st.find(name);
    COLT5_CHECK(it != st.end(), "checkpoint '", path, "': optimizer state 'optim.", name, "' is missing (the file has ",
                "the model but not the AdamW state it needs to resume; it cannot continue this run)");
    COLT5_CHECK(it->second.numel() == 1 && it->second.dtype() == DType::Int64, "checkpoint '", path, "': 'optim.", name,
                "' expected one int64, got ", dtype_name(it->second.dtype()), " ", it->second.shape());
    return it->second.item<int64_t>();
  };
  const int64_t opt_steps = scalar("step");
  COLT5_CHECK(opt_steps == step, "checkpoint '", path, "': 'optim.step' is ", opt_steps, " but colt5.step is ", step);
  size_t updated = 0;
  for (size_t i = 0; i < num_params; ++i) {
    const std::string p = str("state.", i, ".");
    const int have = int(st.count(p + "step")) + int(st.count(p + "exp_avg")) + int(st.count(p + "exp_avg_sq"));
    if (have == 0) continue;
    for (const char* key : {"step", "exp_avg", "exp_avg_sq"})
      COLT5_CHECK(st.count(p + key), "checkpoint '", path, "': optimizer state 'optim.", p, key, "' is missing");
    const int64_t s = scalar(p + "step");
    COLT5_CHECK(s >= 1 && s <= step, "checkpoint '", path, "': 'optim.", p, "step' is ", s, ", expected in [1, ", step,
                "]");
    const Tensor v = st.at(p + "exp_avg_sq").to(DType::Float64).contiguous();
    const double* q = v.data_ptr<double>();
    for (int64_t k = 0, n = v.numel(); k < n; ++k)
      COLT5_CHECK(q[k] >= 0, "checkpoint '", path, "': 'optim.", p, "exp_avg_sq' holds ", q[k], " at element ", k,
                  " (a second moment is never negative)");
    ++updated;
  }
  COLT5_CHECK(step == 0 || updated > 0, "checkpoint '", path, "': ", step, " steps done but no parameter has AdamW ",
              "state (optimizer state is missing)");
  COLT5_CHECK(count < 0 || count == static_cast<int64_t>(st.size()), "checkpoint '", path, "': it holds ", st.size(),
              " optimizer state tensors, but was written with ", count, " (optimizer state is missing)");
}

void check_format(const nn::Metadata& m, const std::string& path) {
  const std::string& f = meta(m, "colt5.format", path);
  COLT5_CHECK(f == kCheckpointFormat, "checkpoint '", path, "': format '", f, "', expected '", kCheckpointFormat, "'");
}

TrainConfig config_from_metadata(const nn::Metadata& m, const std::string& path) {
  check_format(m, path);
  const nlohmann::json j = parse_json(meta(m, "colt5.config", path), "colt5.config", path);
  try {
    return TrainConfig::from_json(j);  // every value range-checked before any allocation
  } catch (const Error& e) {
    fail(str("checkpoint '", path, "': metadata entry 'colt5.config' is not usable: ", e.what()));
  }
}

}  // namespace

void Trainer::save_checkpoint(const std::string& path) const {
  nn::StateDict sd;
  for (const auto& [name, t] : model_->state_dict()) sd["model." + name] = t;
  for (const auto& [name, t] : opt_->state()) sd["optim." + name] = t;
  nn::Metadata m;
  m["colt5.format"] = kCheckpointFormat;
  m["colt5.config"] = cfg_.to_json().dump();
  m["colt5.step"] = std::to_string(step_);
  m["colt5.history"] = history_to_json(history_).dump();
  m["colt5.optim_tensors"] = std::to_string(opt_->state().size());  // lets a reader see state gone missing
  nn::write_safetensors(path, sd, m);
}

TrainConfig Trainer::read_checkpoint_config(const std::string& path) {
  return config_from_metadata(nn::read_safetensors(path).metadata, path);
}

std::unique_ptr<nn::Model> Trainer::load_model(const std::string& path, Device device, TrainConfig* config) {
  nn::SafetensorsFile f = nn::read_safetensors(path);
  const TrainConfig ck = config_from_metadata(f.metadata, path);
  const nn::StateDict model_sd = nn::select_prefix(f.tensors, "model.");
  check_finite(model_sd, "model.", path);
  auto model = nn::make_model(ck.model);
  try {
    model->load_state_dict(model_sd, true);
  } catch (const Error& e) {
    fail(str("checkpoint '", path, "' does not fit its own config: ", e.what()));
  }
  model->to(device);
  if (config) *config = ck;
  return model;
}

void Trainer::load_checkpoint(const std::string& path) {
  nn::SafetensorsFile f = nn::read_safetensors(path);
  const TrainConfig ck = config_from_metadata(f.metadata, path);
  const std::string diff = cfg_.resume_mismatch(ck);
  COLT5_CHECK(diff.empty(), "checkpoint '", path, "' comes from another configuration: ", diff);
  const int64_t step =
      nn::parse_int64_strict(meta(f.metadata, "colt5.step", path), str("checkpoint '", path, "': metadata entry 'colt5.step'"));
  COLT5_CHECK(step >= 0 && step <= TrainLimits::kSteps, "checkpoint '", path, "': metadata entry 'colt5.step' is ", step,
              ", expected in [0, ", TrainLimits::kSteps, "]");
  std::vector<HistoryRow> hist =
      history_from_json(parse_json(meta(f.metadata, "colt5.history", path), "colt5.history", path), path);

  nn::StateDict model_sd = nn::select_prefix(f.tensors, "model.");
  nn::StateDict optim_sd = nn::select_prefix(f.tensors, "optim.");
  COLT5_CHECK(model_sd.size() + optim_sd.size() == f.tensors.size(), "checkpoint '", path,
              "': tensors other than model.* and optim.*");
  check_finite(model_sd, "model.", path);
  check_finite(optim_sd, "optim.", path);
  const auto count_it = f.metadata.find("colt5.optim_tensors");
  const int64_t count = count_it == f.metadata.end()
                            ? -1
                            : nn::parse_int64_strict(count_it->second, str("checkpoint '", path,
                                                                            "': metadata entry 'colt5.optim_tensors'"));
  check_optimizer_state(optim_sd, step, model_->parameters().size(), count, path);
  COLT5_CHECK(hist.size() == static_cast<size_t>(step), "checkpoint '", path, "': metadata entry 'colt5.history' has ",
              hist.size(), " rows for ", step, " steps");
  try {
    model_->load_state_dict(model_sd, true);
    nn::NamedTensors st(optim_sd.begin(), optim_sd.end());
    opt_->load_state(st, true);
  } catch (const Error& e) {
    fail(str("checkpoint '", path, "' does not fit this model: ", e.what()));
  }
  step_ = step;
  history_ = std::move(hist);
}

}  // namespace colt5::train
