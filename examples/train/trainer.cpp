// Trainer (see trainer.h).
#include "trainer.h"

#include <chrono>
#include <cmath>
#include <limits>

#include "autograd/ops.h"
#include "core/backend.h"
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
    text_.emplace(nn::TextDataset::from_file(cfg_.data_path, cfg_.seq_len, cfg_.val_fraction));
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

nn::Batch Trainer::make_batch(nn::Split split, uint64_t index) const {
  nn::Batch b = recall_ ? recall_->batch(split, cfg_.batch_size, cfg_.seed, index)
                        : text_->batch(split, cfg_.batch_size, cfg_.seed, index);
  return {b.inputs.to(device_), b.targets.to(device_)};
}

Tensor Trainer::loss_of(const Tensor& logits, const Tensor& targets) const {
  if (recall_) return cross_entropy(logits, targets);  // [b, C] vs [b]
  const int64_t v = logits.size(-1);
  return cross_entropy(logits.reshape({-1, v}), targets.reshape({-1}));  // every position
}

StepStats Trainer::train_step() {
  const auto t0 = std::chrono::steady_clock::now();
  StepStats st;
  st.lr = nn::warmup_cosine_lr(step_, std::min(cfg_.warmup, cfg_.steps), cfg_.steps, cfg_.lr, cfg_.min_lr);
  opt_->set_lr(st.lr);
  model_->train();
  for (int64_t i = 0; i < cfg_.grad_accum; ++i) {
    const nn::Batch b = make_batch(nn::Split::Train, static_cast<uint64_t>(step_ * cfg_.grad_accum + i));
    const Tensor loss = loss_of(model_->forward(b.inputs), b.targets);
    (loss * (1.0 / static_cast<double>(cfg_.grad_accum))).backward();
    st.loss += loss.item_double() / static_cast<double>(cfg_.grad_accum);
    st.tokens += b.inputs.numel();
  }
  COLT5_CHECK(std::isfinite(st.loss), "training diverged at step ", step_ + 1, ": the loss is ", st.loss,
              " (try a lower --lr, or --clip)");
  const double max_norm = cfg_.clip > 0 ? cfg_.clip : std::numeric_limits<double>::infinity();
  st.grad_norm = nn::clip_grad_norm(model_->parameters(), max_norm);
  opt_->step();
  opt_->zero_grad();
  ++step_;
  st.step = step_;
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  HistoryRow row;
  row.step = step_, row.train_loss = st.loss, row.grad_norm = st.grad_norm, row.lr = st.lr;
  history_.push_back(row);
  return st;
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
    const Tensor logits = model_->forward(b.inputs);
    r.loss += loss_of(logits, b.targets).item_double() / static_cast<double>(nb);
    if (recall_) {
      const auto pred = argmax(logits, 1).to(kCPU).to_vector<int64_t>();
      const auto want = b.targets.to(kCPU).to_vector<int64_t>();
      for (size_t j = 0; j < want.size(); ++j) correct += pred[j] == want[j];
    }
    r.samples += b.inputs.size(0);
  }
  if (recall_) r.accuracy = static_cast<double>(correct) / static_cast<double>(r.samples);
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
  COLT5_CHECK(rows.is_array(), "checkpoint '", path, "': colt5.history is not a JSON array");
  std::vector<HistoryRow> h;
  for (const auto& r : rows) {
    COLT5_CHECK(r.is_array() && r.size() == 6, "checkpoint '", path, "': a colt5.history row is not 6 values");
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
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(str("checkpoint '", path, "': metadata entry '", key, "' is not valid JSON: ", e.what()));
  }
}

void check_format(const nn::Metadata& m, const std::string& path) {
  const std::string& f = meta(m, "colt5.format", path);
  COLT5_CHECK(f == kCheckpointFormat, "checkpoint '", path, "': format '", f, "', expected '", kCheckpointFormat, "'");
}

TrainConfig config_from_metadata(const nn::Metadata& m, const std::string& path) {
  check_format(m, path);
  try {
    return TrainConfig::from_json(parse_json(meta(m, "colt5.config", path), "colt5.config", path));
  } catch (const Error& e) {
    fail(str("checkpoint '", path, "': its config is not usable: ", e.what()));
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
  nn::write_safetensors(path, sd, m);
}

TrainConfig Trainer::read_checkpoint_config(const std::string& path) {
  return config_from_metadata(nn::read_safetensors(path).metadata, path);
}

std::unique_ptr<nn::Model> Trainer::load_model(const std::string& path, Device device, TrainConfig* config) {
  nn::SafetensorsFile f = nn::read_safetensors(path);
  const TrainConfig ck = config_from_metadata(f.metadata, path);
  auto model = nn::make_model(ck.model);
  try {
    model->load_state_dict(nn::select_prefix(f.tensors, "model."), true);
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
  const std::string& step_text = meta(f.metadata, "colt5.step", path);
  int64_t step = -1;
  try {
    step = std::stoll(step_text);
  } catch (const std::exception&) {
  }
  COLT5_CHECK(step >= 0, "checkpoint '", path, "': colt5.step '", step_text, "' is not a step count");
  std::vector<HistoryRow> hist =
      history_from_json(parse_json(meta(f.metadata, "colt5.history", path), "colt5.history", path), path);

  nn::StateDict model_sd = nn::select_prefix(f.tensors, "model.");
  nn::StateDict optim_sd = nn::select_prefix(f.tensors, "optim.");
  COLT5_CHECK(model_sd.size() + optim_sd.size() == f.tensors.size(), "checkpoint '", path,
              "': tensors other than model.* and optim.*");
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
