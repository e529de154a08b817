// livc native runner: load a livc TVM artifact (model.so + manifest.json + weights.safetensors), run the
// prompt through `prefill`, then greedy-decode with `decode_step`, and print the tokens and timings.
//
//   livc-runner ARTIFACT_DIR --prompt-ids 1,2,3 [--max-new-tokens N] [--logits FILE]
//
// Uses only the tvm-ffi C++ API (Module::LoadFromFile, vm_load_executable, vm_initialization, json::Parse,
// Tensor::FromNDAlloc), so it builds against libtvm_ffi.so + libtvm_runtime.so of any platform's wheel
// (the wheel's tvm/runtime headers are not needed). The manifest names each entry function's arguments
// ("tokens", "pos", "cache:KEY", "weight:NAME") and outputs ("logits", "cache:KEY"); weights are read from
// the safetensors file by name (its JSON header is parsed here) with the dtype the manifest gives.
// Output lines (parsed by livc.backends.tvm.native):
//   tokens: 5 7 9
//   prefill: 3 tokens in 1.234 ms (2431.2 tokens/s)
//   decode: 8 tokens in 9.876 ms (810.0 tokens/s)
// --logits FILE writes float32 logits, vocab values per step: the prefill's last position, then each decode.
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/extra/json.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/string.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace ffi = tvm::ffi;
using Json = ffi::json::Object;

struct CPUAlloc {
  void AllocData(DLTensor* t) {
    size_t bytes = (ffi::GetDataSize(*t) + 63) / 64 * 64;
    t->data = std::aligned_alloc(64, bytes ? bytes : 64);
    if (t->data == nullptr) throw std::runtime_error("out of memory");
  }
  void FreeData(DLTensor* t) { std::free(t->data); }
};

static std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

static Json ParseJson(const std::string& text, const std::string& what) {
  ffi::String err;
  ffi::Any value = ffi::json::Parse(ffi::String(text), &err);
  if (!err.empty()) throw std::runtime_error(what + ": " + std::string(err));
  return value.cast<Json>();
}

static std::string Str(const Json& obj, const char* key) { return std::string(obj.at(ffi::String(key)).cast<ffi::String>()); }
static int64_t Int(const Json& obj, const char* key) { return obj.at(ffi::String(key)).cast<int64_t>(); }
static ffi::json::Array Arr(const Json& obj, const char* key) { return obj.at(ffi::String(key)).cast<ffi::json::Array>(); }

static std::vector<int64_t> Shape(const ffi::json::Array& a) {
  std::vector<int64_t> s;
  for (const ffi::Any& v : a) s.push_back(v.cast<int64_t>());
  return s;
}

static ffi::Tensor Empty(const std::vector<int64_t>& shape, const std::string& dtype) {
  DLDataType dt = ffi::StringToDLDataType(ffi::String(dtype));
  ffi::Tensor t = ffi::Tensor::FromNDAlloc(CPUAlloc(), ffi::ShapeView(shape.data(), shape.size()), dt, DLDevice{kDLCPU, 0});
  std::memset(t.data_ptr(), 0, ffi::GetDataSize(*t.GetDLTensorPtr()));
  return t;
}

// Weights: every manifest weight input, filled from the safetensors file (bytes must match exactly).
static std::map<std::string, ffi::Tensor> LoadWeights(const std::string& path, const ffi::json::Array& inputs) {
  std::string blob = ReadFile(path);
  if (blob.size() < 8) throw std::runtime_error(path + ": not a safetensors file");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(blob[i]);
  if (8 + n > blob.size()) throw std::runtime_error(path + ": truncated safetensors header");
  Json header = ParseJson(blob.substr(8, n), path);
  const char* data = blob.data() + 8 + n;
  size_t data_len = blob.size() - 8 - n;
  std::map<std::string, ffi::Tensor> out;
  for (const ffi::Any& item : inputs) {
    Json w = item.cast<Json>();
    std::string name = Str(w, "name");
    if (header.count(ffi::String(name)) == 0) throw std::runtime_error(path + ": no tensor " + name);
    Json entry = header.at(ffi::String(name)).cast<Json>();
    std::vector<int64_t> off = Shape(Arr(entry, "data_offsets"));
    ffi::Tensor t = Empty(Shape(Arr(w, "shape")), Str(w, "dtype"));
    size_t bytes = ffi::GetDataSize(*t.GetDLTensorPtr());
    if (off[1] - off[0] != static_cast<int64_t>(bytes) || static_cast<size_t>(off[1]) > data_len)
      throw std::runtime_error(path + ": tensor " + name + " has the wrong size");
    std::memcpy(t.data_ptr(), data + off[0], bytes);
    out.emplace(name, t);
  }
  return out;
}

struct Model {
  Model(ffi::Module vm, Json manifest) : vm(vm), manifest(manifest) {}
  ffi::Module vm;
  Json manifest;
  std::map<std::string, ffi::Tensor> weights, cache;
  int64_t vocab = 0;

  void ResetCache() {
    cache.clear();
    for (const ffi::Any& item : Arr(manifest, "cache")) {
      Json c = item.cast<Json>();
      cache.emplace(Str(c, "key"), Empty(Shape(Arr(c, "shape")), Str(c, "dtype")));
    }
  }

  // Call entry `name`; returns the logits and stores the new cache tensors.
  std::vector<float> Call(const std::string& name, const std::vector<int32_t>& tokens, int64_t pos) {
    Json entry = manifest.at(ffi::String("entries")).cast<Json>().at(ffi::String(name)).cast<Json>();
    ffi::Tensor tok = Empty({1, static_cast<int64_t>(tokens.size())}, "int32");
    std::memcpy(tok.data_ptr(), tokens.data(), tokens.size() * sizeof(int32_t));
    ffi::Shape pos_shape({pos});
    ffi::Shape len_shape({static_cast<int64_t>(tokens.size())});
    std::vector<ffi::AnyView> args;
    for (const ffi::Any& a : Arr(entry, "args")) {
      std::string arg(a.cast<ffi::String>());
      if (arg == "tokens") args.emplace_back(tok);
      else if (arg == "pos") args.emplace_back(pos_shape);
      else if (arg == "length") args.emplace_back(len_shape);
      else if (arg.rfind("cache:", 0) == 0) args.emplace_back(cache.at(arg.substr(6)));
      else if (arg.rfind("weight:", 0) == 0) args.emplace_back(weights.at(arg.substr(7)));
      else throw std::runtime_error("manifest: unknown argument kind " + arg);
    }
    ffi::Function fn = vm->GetFunction(ffi::String(name)).value();
    ffi::Any ret;
    fn.CallPacked(args.data(), static_cast<int32_t>(args.size()), &ret);
    ffi::Array<ffi::Any> outs = ret.cast<ffi::Array<ffi::Any>>();
    ffi::json::Array names = Arr(entry, "outputs");
    std::vector<float> logits;
    for (size_t i = 0; i < names.size(); ++i) {
      std::string out(names[i].cast<ffi::String>());
      ffi::Tensor t = outs[i].cast<ffi::Tensor>();
      if (out == "logits") {
        const float* p = static_cast<const float*>(t.data_ptr());
        logits.assign(p + t.numel() - vocab, p + t.numel());
      } else {
        cache.at(out.substr(6)) = t;
      }
    }
    return logits;
  }
};

static int32_t Argmax(const std::vector<float>& v) {
  size_t best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[best]) best = i;
  return static_cast<int32_t>(best);
}

static std::vector<int32_t> ParseIds(const std::string& text) {
  std::vector<int32_t> ids;
  std::stringstream s(text);
  std::string item;
  while (std::getline(s, item, ',')) ids.push_back(static_cast<int32_t>(std::stol(item)));
  if (ids.empty()) throw std::runtime_error("--prompt-ids: give at least one token id");
  return ids;
}

static double Ms(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

static int Run(int argc, char** argv) {
  if (argc < 2) throw std::runtime_error("usage: livc-runner ARTIFACT_DIR --prompt-ids 1,2,3 [--max-new-tokens N] [--logits FILE]");
  std::string dir = argv[1], logits_path;
  std::vector<int32_t> prompt;
  int64_t steps = 16;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--prompt-ids") prompt = ParseIds(argv[i + 1]);
    else if (flag == "--max-new-tokens") steps = std::stol(argv[i + 1]);
    else if (flag == "--logits") logits_path = argv[i + 1];
    else throw std::runtime_error("unknown option " + flag);
  }
  if (prompt.empty()) throw std::runtime_error("--prompt-ids is required");
  Json manifest = ParseJson(ReadFile(dir + "/manifest.json"), dir + "/manifest.json");
  int64_t vocab = Int(manifest, "vocab");
  std::optional<int64_t> capacity = manifest.at(ffi::String("capacity")).try_cast<int64_t>();
  int64_t positions = static_cast<int64_t>(prompt.size()) + (steps > 0 ? steps - 1 : 0);
  if (capacity && positions > *capacity)
    throw std::runtime_error("the prompt and new tokens need " + std::to_string(positions) +
                             " positions; the artifact's cache holds " + std::to_string(*capacity) + " (max_len)");
  bool decodes = manifest.at(ffi::String("entries")).cast<Json>().count(ffi::String("decode_step")) > 0;
  if (steps > 1 && !decodes)
    throw std::runtime_error("this model has no decode_step (bidirectional attention): use --max-new-tokens 1");
  for (int32_t t : prompt)
    if (t < 0 || t >= vocab) throw std::runtime_error("token id " + std::to_string(t) + " is outside the vocabulary");
  ffi::Module lib = ffi::Module::LoadFromFile(ffi::String(dir + "/" + Str(manifest, "library")));
  Model m(lib->GetFunction(ffi::String("vm_load_executable")).value()().cast<ffi::Module>(), manifest);
  m.vocab = vocab;
  m.vm->GetFunction(ffi::String("vm_initialization")).value()(static_cast<int>(kDLCPU), 0, 2);  // pooled allocator
  Json wspec = m.manifest.at(ffi::String("weights")).cast<Json>();
  m.weights = LoadWeights(dir + "/" + Str(wspec, "file"), Arr(m.manifest, "weight_inputs"));
  m.ResetCache();

  auto t0 = std::chrono::steady_clock::now();
  std::vector<float> logits = m.Call("prefill", prompt, 0);
  auto t1 = std::chrono::steady_clock::now();
  std::vector<std::vector<float>> all{logits};
  std::vector<int32_t> out;
  int64_t pos = static_cast<int64_t>(prompt.size());
  for (int64_t s = 0; s < steps; ++s) {
    out.push_back(Argmax(logits));
    if (s + 1 == steps) break;
    logits = m.Call("decode_step", {out.back()}, pos++);
    all.push_back(logits);
  }
  auto t2 = std::chrono::steady_clock::now();
  std::printf("tokens:");
  for (int32_t t : out) std::printf(" %d", t);
  std::printf("\n");
  double pre = Ms(t0, t1), dec = Ms(t1, t2);
  std::printf("prefill: %zu tokens in %.3f ms (%.1f tokens/s)\n", prompt.size(), pre, prompt.size() * 1000.0 / pre);
  int64_t decoded = steps > 0 ? steps - 1 : 0;
  std::printf("decode: %ld tokens in %.3f ms (%.1f tokens/s)\n", static_cast<long>(decoded), dec,
              decoded ? decoded * 1000.0 / dec : 0.0);
  if (!logits_path.empty()) {
    std::ofstream f(logits_path, std::ios::binary);
    for (const auto& v : all) f.write(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
    if (!f) throw std::runtime_error("cannot write " + logits_path);
  }
  return 0;
}

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const ffi::Error& e) {
    std::fprintf(stderr, "error: %s: %s\n", e.kind().c_str(), e.message().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
  }
  return 1;
}
