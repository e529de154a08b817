// livc native RPC server: serve one TVM RPC session on an already connected socket, with only the TVM runtime
// (no Python) — built for aarch64 and run under qemu-aarch64-static, it is the "emulated device" that
// livc.backends.tvm.rpc_emulated hands each tracker-matched connection to.
//
//   livc-rpc-server SOCKET_FD WORK_DIR
//
// The runtime library (libtvm_runtime.so) already defines rpc.ServerLoop and the server-side file functions
// tvm.rpc.server.upload / download / remove; they resolve names through tvm.rpc.server.workpath, which the
// Python server (tvm/rpc/server.py, _server_env) registers and which is defined here, with:
//   tvm.rpc.server.workpath(name)      WORK_DIR/name (an absolute name is kept)
//   tvm.rpc.server.load_module(name)   Module::LoadFromFile(WORK_DIR/name) (session.load_module)
//   tvm.contrib.random.random_fill_for_measure(tensor)   MetaSchedule RPCRunner's argument filler (the
//                                      official wheels' runtime is built without USE_RANDOM)
// Uses only the tvm-ffi C++ API, like runner.cc. Exit status 0 when the client closes the session.
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/string.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>

namespace ffi = tvm::ffi;

static std::string g_work;

static std::string WorkPath(const std::string& name) {
  if (!name.empty() && name[0] == '/') return name;
  return name.empty() ? g_work : g_work + "/" + name;
}

// Floats: uniform in [-1, 1); integers: zeros (valid as indices); other types: zero bytes.
static void RandomFill(DLTensor* t) {
  if (t->device.device_type != kDLCPU) throw std::runtime_error("random_fill_for_measure: only CPU tensors");
  size_t n = 1;
  for (int i = 0; i < t->ndim; ++i) n *= static_cast<size_t>(t->shape[i]);
  char* data = static_cast<char*>(t->data) + t->byte_offset;
  std::memset(data, 0, ffi::GetDataSize(*t));
  if (t->dtype.code != kDLFloat || t->dtype.lanes != 1) return;
  std::mt19937 gen(1234);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  if (t->dtype.bits == 32) {
    float* p = reinterpret_cast<float*>(data);
    for (size_t i = 0; i < n; ++i) p[i] = dist(gen);
  } else if (t->dtype.bits == 64) {
    double* p = reinterpret_cast<double*>(data);
    for (size_t i = 0; i < n; ++i) p[i] = dist(gen);
  }  // f16 / bf16: zeros (timing does not depend on the values)
}

static void Register() {
  ffi::Function::SetGlobal(
      "tvm.rpc.server.workpath",
      ffi::Function::FromTyped([](ffi::String name) { return ffi::String(WorkPath(std::string(name))); }), true);
  ffi::Function::SetGlobal("tvm.rpc.server.load_module", ffi::Function::FromTyped([](ffi::String name) {
                             return ffi::Module::LoadFromFile(ffi::String(WorkPath(std::string(name))));
                           }),
                           true);
  ffi::Function::SetGlobal("tvm.contrib.random.random_fill_for_measure",
                           ffi::Function::FromPacked([](ffi::PackedArgs args, ffi::Any* rv) {
                             RandomFill(args[0].cast<DLTensor*>());
                           }),
                           true);
}

int main(int argc, char** argv) {
  try {
    if (argc != 3) throw std::runtime_error("usage: livc-rpc-server SOCKET_FD WORK_DIR");
    int fd = std::atoi(argv[1]);
    g_work = argv[2];
    if (chdir(g_work.c_str()) != 0) throw std::runtime_error("cannot enter the work directory " + g_work);
    Register();
    ffi::Function::GetGlobalRequired("rpc.ServerLoop")(fd);
    return 0;
  } catch (const ffi::Error& e) {
    std::fprintf(stderr, "livc-rpc-server: %s: %s\n", e.kind().c_str(), e.message().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "livc-rpc-server: %s\n", e.what());
  }
  return 1;
}
