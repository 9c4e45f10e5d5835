// vigil_bpf: the N-API addon through which Vigil loads BPF objects and reads their ring buffers.
#include <malloc.h>
#include <napi.h>

#include "addon.h"
#include "bpf_object.h"
#include "errors.h"
#include "ring_reader.h"

namespace {

// Gives the C heap's free pages back to the system (glibc's malloc_trim): the
// ring thread's arena keeps the pages of the batches a burst needed, and
// glibc returns only a heap's top. True when something was given back.
Napi::Value TrimNativeHeap(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using namespace vigil;
  LibbpfLog::Install();
  auto* data = new AddonData();
  Napi::Function bpfObject = BpfObject::Define(env);
  data->bpfObject = Napi::Persistent(bpfObject);
  env.SetInstanceData(data);
  exports.Set("BpfObject", bpfObject);
  exports.Set("RingReader", RingReader::Define(env));
  exports.Set("trimNativeHeap", Napi::Function::New(env, TrimNativeHeap, "trimNativeHeap"));
  return exports;
}

}  // namespace

NODE_API_MODULE(vigil_bpf, Init)
