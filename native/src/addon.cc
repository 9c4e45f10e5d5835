// vigil_bpf: the N-API addon through which Vigil loads BPF objects and reads their ring buffers.
#include <napi.h>

#include "addon.h"
#include "bpf_object.h"
#include "errors.h"
#include "ring_reader.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using namespace vigil;
  LibbpfLog::Install();
  auto* data = new AddonData();
  Napi::Function bpfObject = BpfObject::Define(env);
  data->bpfObject = Napi::Persistent(bpfObject);
  env.SetInstanceData(data);
  exports.Set("BpfObject", bpfObject);
  exports.Set("RingReader", RingReader::Define(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(vigil_bpf, Init)
