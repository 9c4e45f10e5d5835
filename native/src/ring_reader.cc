#include "ring_reader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "bpf_object.h"
#include "errors.h"

namespace vigil {
namespace {

// Free batches kept for reuse (2 MiB at the default size); more are freed.
constexpr size_t kKeepFree = 8;
// A poll cycle that read less than this is a trickle: handed off, then a pause to one poll timeout after it began (see Run).
constexpr size_t kCoalesceBytes = 64 * 1024;
// Batches queued but not yet started by JS from which on JS counts as stalled (see HandOff).
constexpr uint32_t kStalledQueue = 8;
// Empty polls in a row before the reader switches to idlePollTimeoutMs.
constexpr int kIdlePollsBeforeBackoff = 100;

double Option(Napi::Env env, Napi::Object opts, const char* name, double fallback, double min, double max) {
  Napi::Value v = opts.Get(name);
  if (v.IsUndefined()) return fallback;
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= min && d <= max && d == static_cast<double>(static_cast<int64_t>(d)))) {
    ThrowArgument(env, std::string("RingReader: opts.") + name + " must be an integer from " +
                           std::to_string(static_cast<int64_t>(min)) + " to " + std::to_string(static_cast<int64_t>(max)));
  }
  return d;
}

void FreeLentBatch(napi_env, void*, void* hint) {
  auto* batch = static_cast<Batch*>(hint);
  RingShared* shared = batch->shared;
  shared->Give(batch);
  shared->Unref();
}

void FinalizeFunction(Napi::Env env, void*, RingShared* shared) {
  napi_value undefined;
  // At environment teardown there may be no JS left to resolve into; nothing to do then.
  if (shared->closed != nullptr && napi_get_undefined(env, &undefined) == napi_ok) {
    napi_resolve_deferred(env, shared->closed, undefined);
  }
  shared->closed = nullptr;
  shared->Unref();
}

}  // namespace

Batch* RingShared::Take(size_t bytes) {
  if (bytes <= batchBytes) {
    std::lock_guard<std::mutex> lock(mu);
    if (!free.empty()) {
      Batch* batch = free.back().release();
      free.pop_back();
      return batch;
    }
  }
  return new Batch(this, bytes < batchBytes ? batchBytes : bytes);
}

void RingShared::Give(Batch* batch) {
  batch->len = 0;
  batch->payload = 0;
  batch->records = 0;
  if (batch->cap == batchBytes) {
    std::lock_guard<std::mutex> lock(mu);
    if (free.size() < kKeepFree) {
      free.emplace_back(batch);
      return;
    }
  }
  delete batch;
}

void RingShared::Unref() {
  if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

// Runs on the JS thread for each queued batch (env is null when the
// environment is torn down before delivery: the batch is only recycled).
void DeliverBatch(Napi::Env env, Napi::Function onBatch, RingShared* shared, Batch* batch) {
  shared->queued.fetch_sub(1, std::memory_order_release);
  if (static_cast<napi_env>(env) == nullptr) {
    shared->Give(batch);
    return;
  }
  uint32_t records = batch->records;
  napi_value buffer;
  // Lend the memory to JS without a copy; FreeLentBatch takes it back when the Buffer is collected.
  shared->refs.fetch_add(1, std::memory_order_relaxed);
  if (napi_create_external_buffer(env, batch->len, batch->data.get(), FreeLentBatch, batch, &buffer) != napi_ok) {
    shared->Give(batch);
    shared->Unref();
    throw Napi::Error::New(env);
  }
  try {
    onBatch.Call({buffer, Napi::Number::New(env, records)});
  } catch (const Napi::Error& e) {
    // Like an exception in an event listener: the process's uncaughtException.
    napi_fatal_exception(env, e.Value());
  }
  if (shared->reuse) {
    // Detaching drops the only reference to the memory: FreeLentBatch runs
    // without waiting for a garbage collection, and a Buffer kept by JS reads
    // as empty instead of as the next batch's records.
    napi_value arrayBuffer;
    if (napi_get_typedarray_info(env, buffer, nullptr, nullptr, nullptr, &arrayBuffer, nullptr) == napi_ok) {
      napi_detach_arraybuffer(env, arrayBuffer);
    }
  }
}

Napi::Function RingReader::Define(Napi::Env env) {
  return DefineClass(env, "RingReader",
                     {
                         InstanceMethod<&RingReader::Stats>("stats"),
                         InstanceMethod<&RingReader::Close>("close"),
                         InstanceMethod<&RingReader::JsRef>("ref"),
                         InstanceMethod<&RingReader::JsUnref>("unref"),
                     });
}

RingReader::RingReader(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RingReader>(info), env_(info.Env()) {
  Napi::Env env = info.Env();
  BpfObject* object = BpfObject::From(info[0]);
  if (object == nullptr) ThrowArgument(env, "RingReader: obj must be a BpfObject");
  if (!info[1].IsString()) ThrowArgument(env, "RingReader: mapName must be a string");
  std::string map = info[1].As<Napi::String>().Utf8Value();
  op_ = "RingReader " + map;
  if (!info[2].IsFunction()) ThrowArgument(env, op_ + ": onBatch must be a function");
  Napi::Object opts = info[3].IsObject() ? info[3].As<Napi::Object>() : Napi::Object::New(env);
  if (!info[3].IsUndefined() && !info[3].IsObject()) ThrowArgument(env, op_ + ": opts must be an object");
  size_t batchBytes = static_cast<size_t>(Option(env, opts, "batchBytes", 256 * 1024, 64, 1 << 30));
  maxQueued_ = static_cast<uint32_t>(Option(env, opts, "maxQueuedBatches", 64, 1, 1 << 20));
  timeoutMs_ = static_cast<int>(Option(env, opts, "pollTimeoutMs", 10, 1, 60 * 1000));
  idleTimeoutMs_ = static_cast<int>(Option(env, opts, "idlePollTimeoutMs", timeoutMs_, timeoutMs_, 60 * 1000));
  Napi::Value reuse = opts.Get("reuseBatches");
  if (!reuse.IsUndefined() && !reuse.IsBoolean()) ThrowArgument(env, op_ + ": opts.reuseBatches must be a boolean");

  Napi::Value idleWake = opts.Get("idleWakeMap");
  if (!idleWake.IsUndefined() && !idleWake.IsString()) ThrowArgument(env, op_ + ": opts.idleWakeMap must be a string");
  if (idleWake.IsString()) idleWakeFd_ = object->DupMapFd(env, op_, idleWake.As<Napi::String>().Utf8Value(), BPF_MAP_TYPE_ARRAY);
  try {
    fd_ = object->DupMapFd(env, op_, map, BPF_MAP_TYPE_RINGBUF);
  } catch (...) {
    if (idleWakeFd_ >= 0) close(idleWakeFd_);
    throw;
  }
  rb_ = ring_buffer__new(fd_, OnSample, this, nullptr);
  if (rb_ == nullptr) {
    int err = errno;
    close(fd_);
    if (idleWakeFd_ >= 0) close(idleWakeFd_);
    ThrowErrno(env, op_, err);
  }
  shared_ = new RingShared(batchBytes, reuse.IsBoolean() && reuse.As<Napi::Boolean>().Value());
  cur_ = shared_->Take(batchBytes);
  try {
    napi_value closed;
    if (napi_create_promise(env, &shared_->closed, &closed) != napi_ok) throw Napi::Error::New(env);
    info.This().As<Napi::Object>().DefineProperty(Napi::PropertyDescriptor::Value("closed", closed, napi_enumerable));
    // No queue limit in N-API: the bound (maxQueuedBatches) is enforced by HandOff,
    // which can then keep filling a batch instead of dropping it.
    tsfn_ = BatchFunction::New(env, info[2].As<Napi::Function>(), "vigil.RingReader", 0, 1, shared_,
                               FinalizeFunction, static_cast<void*>(nullptr));
  } catch (...) {
    ring_buffer__free(rb_);
    close(fd_);
    if (idleWakeFd_ >= 0) close(idleWakeFd_);
    delete cur_;
    delete shared_;
    throw;
  }
  shared_->refs.fetch_add(1, std::memory_order_relaxed);
  // Registered after the TSFN so that it runs before the TSFN's own teardown.
  napi_add_env_cleanup_hook(env, CleanupHook, this);
  Ref();  // an open reader is not collected: only close() ends it
  thread_ = std::thread(&RingReader::Run, this);
}

RingReader::~RingReader() {
  Shutdown(From::kDestructor);
  shared_->Unref();
}

void RingReader::Run() {
  pthread_setname_np(pthread_self(), "vigil-ring");  // for top -H and perf
  while (!stop_.load(std::memory_order_relaxed)) {
    auto cycleStart = std::chrono::steady_clock::now();
    cycleBytes_ = 0;
    // A ring that stayed empty for a while is polled less often (idle wakeups cost
    // CPU); the first record after that waits at most one idle poll, or, with an
    // idle-wake flag, none: the producer that finds it set forces a wakeup and
    // clears it. Records already there keep the level-triggered poll ready.
    if (idlePolls_ == kIdlePollsBeforeBackoff && idleWakeFd_ >= 0) {
      const uint32_t key = 0, set = 1;
      bpf_map_update_elem(idleWakeFd_, &key, &set, BPF_ANY);
    }
    int polled = ring_buffer__poll(rb_, idlePolls_ >= kIdlePollsBeforeBackoff ? idleTimeoutMs_ : timeoutMs_);
    // Wakeups are batched in the kernel: a poll that timed out may still leave records.
    int consumed = polled >= 0 ? ring_buffer__consume(rb_) : polled;
    if (consumed < 0 && consumed != -EINTR && consumed != -ECANCELED) {
      error_ = -consumed;
      break;
    }
    bool idle = polled == 0 && consumed == 0;
    idlePolls_ = idle ? idlePolls_ + 1 : 0;
    // The epoll set is level-triggered: while records trickle in, every poll
    // returns at once and the loop would wake for every few records, each
    // wakeup taking a CPU from the producer and the JS thread. A short cycle
    // instead hands off what it read at once and the thread sleeps until one
    // poll timeout after the cycle began: one wakeup and one batch per poll
    // timeout, and no record waits longer than a poll timeout for its cycle
    // (a poll that waited out its timeout sleeps no more). The producer's
    // forced wakeup (at 256 KiB pending) comes only from a rate that makes
    // long cycles, which run back to back.
    bool trickle = cycleBytes_ > 0 && cycleBytes_ < kCoalesceBytes;
    HandOff(idle ? Why::kIdle : (polled == 0 || trickle) ? Why::kTrickle : Why::kCycle);
    if (trickle) std::this_thread::sleep_until(cycleStart + std::chrono::milliseconds(timeoutMs_));
  }
  HandOff(Why::kFinal);
}

int RingReader::OnSample(void* ctx, void* data, size_t size) {
  auto* self = static_cast<RingReader*>(ctx);
  size_t frame = (4 + size + 7) & ~size_t{7};
  Batch* batch = self->cur_;
  if (batch->len + frame > batch->cap) {
    self->HandOff(Why::kFull);
    batch = self->cur_;
    if (frame > batch->cap) {  // a record larger than a whole batch gets a batch of its own
      self->shared_->Give(batch);
      batch = self->cur_ = self->shared_->Take(frame);
    }
  }
  uint8_t* p = batch->data.get() + batch->len;
  uint32_t length = static_cast<uint32_t>(size);
  memcpy(p, &length, 4);
  memcpy(p + 4, data, size);
  memset(p + 4 + size, 0, frame - 4 - size);
  batch->len += frame;
  batch->payload += size;
  self->cycleBytes_ += size;
  batch->records++;
  // A negative return makes libbpf stop consuming (the record is consumed): close() need not wait for an empty ring.
  return self->stop_.load(std::memory_order_relaxed) ? -ECANCELED : 0;
}

void RingReader::HandOff(Why why) {
  Batch* batch = cur_;
  if (batch->records == 0) return;
  // A JS thread that has not started on several batches already queued is
  // stalled (a long garbage collection): a partial batch would reach it no
  // sooner for being queued now, so it is filled on instead, and the stall is
  // covered by up to maxQueued full batches rather than by one small batch per
  // poll cycle. It goes at the first cycle after JS took the queue. A queue
  // of one or two is JS merely busy: partial batches go on as they are, so it
  // does not wait on a batch held here.
  if (why != Why::kFull && why != Why::kFinal && shared_->queued.load(std::memory_order_acquire) >= kStalledQueue) return;
  if (why == Why::kCycle) {
    // Under heavy load cycles run back to back: handing off after each would
    // mean many small batches. Hold a partial batch for up to one poll
    // timeout instead. Records of a trickle have waited about one timeout
    // already and go at once, as do those of a ring gone idle.
    auto now = std::chrono::steady_clock::now();
    if (heldSince_ == std::chrono::steady_clock::time_point{}) heldSince_ = now;
    if (now - heldSince_ < std::chrono::milliseconds(timeoutMs_)) return;
  }
  heldSince_ = {};
  RingShared* s = shared_;
  bool queued = false;
  if (s->queued.load(std::memory_order_acquire) < maxQueued_) {
    s->queued.fetch_add(1, std::memory_order_relaxed);
    uint32_t records = batch->records;  // read first: once queued, the batch belongs to the JS thread
    uint64_t payload = batch->payload;
    if (tsfn_.NonBlockingCall(batch) == napi_ok) {
      s->batches.fetch_add(1, std::memory_order_relaxed);
      s->records.fetch_add(records, std::memory_order_relaxed);
      s->bytes.fetch_add(payload, std::memory_order_relaxed);
      cur_ = s->Take(s->batchBytes);
      queued = true;
    } else {
      s->queued.fetch_sub(1, std::memory_order_relaxed);  // the environment is going away
    }
  } else if (why != Why::kFull && why != Why::kFinal) {
    return;  // not full yet: keep filling it while JS catches up
  }
  if (!queued) {
    s->droppedBatches.fetch_add(1, std::memory_order_relaxed);
    s->droppedRecords.fetch_add(batch->records, std::memory_order_relaxed);
    batch->len = 0;
    batch->payload = 0;
    batch->records = 0;
  }
}

void RingReader::Shutdown(From from) {
  if (closed_) return;
  closed_ = true;
  stop_.store(true, std::memory_order_relaxed);
  thread_.join();  // at most one poll timeout plus the record being copied
  // Queued batches are still delivered; then the TSFN is finalized and `closed` resolves.
  tsfn_.Release();
  ring_buffer__free(rb_);
  close(fd_);
  if (idleWakeFd_ >= 0) close(idleWakeFd_);
  shared_->Give(cur_);
  cur_ = nullptr;
  if (from != From::kCleanupHook) napi_remove_env_cleanup_hook(env_, CleanupHook, this);
  if (from == From::kClose) Unref();  // collectable from now on
}

void RingReader::CleanupHook(void* reader) { static_cast<RingReader*>(reader)->Shutdown(From::kCleanupHook); }

void RingReader::Close(const Napi::CallbackInfo& info) {
  bool wasOpen = !closed_;
  Shutdown(From::kClose);
  if (wasOpen && error_ != 0) ThrowErrno(info.Env(), op_, error_, "reading the ring failed");
}

void RingReader::JsRef(const Napi::CallbackInfo& info) {
  if (!closed_) tsfn_.Ref(info.Env());
}

void RingReader::JsUnref(const Napi::CallbackInfo& info) {
  if (!closed_) tsfn_.Unref(info.Env());
}

Napi::Value RingReader::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RingShared* s = shared_;
  Napi::Object out = Napi::Object::New(env);
  out.Set("records", static_cast<double>(s->records.load(std::memory_order_relaxed)));
  out.Set("bytes", static_cast<double>(s->bytes.load(std::memory_order_relaxed)));
  out.Set("batches", static_cast<double>(s->batches.load(std::memory_order_relaxed)));
  out.Set("droppedRecords", static_cast<double>(s->droppedRecords.load(std::memory_order_relaxed)));
  out.Set("droppedBatches", static_cast<double>(s->droppedBatches.load(std::memory_order_relaxed)));
  out.Set("queuedBatches", s->queued.load(std::memory_order_relaxed));
  return out;
}

}  // namespace vigil
