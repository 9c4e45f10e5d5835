// RingReader: a native thread that drains a BPF ring buffer into batches and
// hands them to a JavaScript callback.
#pragma once

#include <napi.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct ring_buffer;

namespace vigil {

struct RingShared;

// A batch: records framed as [u32 length][record][zero padding to 8 bytes].
struct Batch {
  Batch(RingShared* shared, size_t cap) : shared(shared), data(new uint8_t[cap]), cap(cap) {}

  RingShared* shared;
  std::unique_ptr<uint8_t[]> data;
  size_t cap;
  size_t len = 0;         // bytes used, framing included
  uint64_t payload = 0;   // record bytes, framing excluded
  uint32_t records = 0;
};

// What the poll thread, the JS thread and the batches JS still holds share.
// Reference-counted: the RingReader, the thread-safe function and every
// batch lent to JS hold one each, so it outlives a reader that is closed
// and collected while JS still has batches or the queue is still draining.
struct RingShared {
  RingShared(size_t batchBytes, bool reuse) : batchBytes(batchBytes), reuse(reuse) {}

  // A batch with room for at least `bytes`, from the free list when it fits.
  Batch* Take(size_t bytes);
  // Back to the free list, or freed when the list is full or the batch oversized.
  void Give(Batch* batch);
  void Unref();

  const size_t batchBytes;
  const bool reuse;  // detach each Buffer when onBatch returns (opts.reuseBatches)
  std::atomic<uint32_t> refs{1};
  std::mutex mu;
  std::vector<std::unique_ptr<Batch>> free;  // guarded by mu

  std::atomic<uint32_t> queued{0};  // handed to the TSFN, not yet delivered to JS
  std::atomic<uint64_t> records{0}, bytes{0}, batches{0}, droppedRecords{0}, droppedBatches{0};
  napi_deferred closed = nullptr;  // resolved when the last queued batch has been delivered
};

void DeliverBatch(Napi::Env env, Napi::Function onBatch, RingShared* shared, Batch* batch);
using BatchFunction = Napi::TypedThreadSafeFunction<RingShared, Batch, DeliverBatch>;

class RingReader : public Napi::ObjectWrap<RingReader> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit RingReader(const Napi::CallbackInfo& info);
  ~RingReader() override;

 private:
  // Why a batch is offered: it is full; a long cycle (a burst) ended, and a
  // partial batch is held then; a short cycle or one whose poll waited out
  // its timeout ended, and its records have waited long enough; the ring is
  // idle; the thread is stopping.
  enum class Why { kFull, kCycle, kTrickle, kIdle, kFinal };

  Napi::Value Stats(const Napi::CallbackInfo& info);
  void Close(const Napi::CallbackInfo& info);
  void JsRef(const Napi::CallbackInfo& info);
  void JsUnref(const Napi::CallbackInfo& info);

  void Run();
  static int OnSample(void* ctx, void* data, size_t size);
  void HandOff(Why why);
  // Who shuts the reader down: close(), the destructor (only reached after
  // close(), or at environment teardown), or the environment's cleanup hook.
  enum class From { kClose, kDestructor, kCleanupHook };
  // Stops and joins the thread, then releases the TSFN and the ring. Idempotent.
  void Shutdown(From from);
  static void CleanupHook(void* reader);

  napi_env env_;
  std::string op_;  // "RingReader <map>", for messages
  uint32_t maxQueued_;
  int timeoutMs_;
  int idleTimeoutMs_;
  int idlePolls_ = 0;
  RingShared* shared_ = nullptr;
  int fd_ = -1;
  // opts.idleWakeMap: the producers' flag (an ARRAY map's first u32) that asks the
  // next record for a wakeup, set when the reader turns to idle polls; -1: none.
  int idleWakeFd_ = -1;
  struct ring_buffer* rb_ = nullptr;
  BatchFunction tsfn_;
  Batch* cur_ = nullptr;  // the batch being filled; poll thread only while it runs
  std::chrono::steady_clock::time_point heldSince_;  // when a cycle first ended with cur_ not empty
  size_t cycleBytes_ = 0;  // record bytes read in the current poll cycle
  std::atomic<bool> stop_{false};
  std::thread thread_;
  int error_ = 0;  // errno that ended the poll thread, read after join
  bool closed_ = false;
};

}  // namespace vigil
