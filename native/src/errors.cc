#include "errors.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace vigil {
namespace {

// The text of the LibbpfLog alive on this thread, if any.
thread_local std::string* current_text = nullptr;

int PrintHook(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  if (current_text == nullptr) return vfprintf(stderr, format, args);
  va_list copy;
  va_copy(copy, args);
  int n = vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  if (n <= 0) return n;
  size_t at = current_text->size();
  current_text->resize(at + n + 1);
  vsnprintf(current_text->data() + at, n + 1, format, args);
  current_text->resize(at + n);
  return n;
}

std::string ErrnoText(int err) {
  char buf[128];
  libbpf_strerror(err, buf, sizeof(buf));  // knows libbpf's own codes as well as errno
  return buf;
}

std::string ErrnoCode(int err) {
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : "LIBBPF_E" + std::to_string(err);
}

}  // namespace

void ThrowErrno(Napi::Env env, const std::string& what, int err, const std::string& detail,
                const std::string& log) {
  if (err < 0) err = -err;
  std::string message = what + ": " + (detail.empty() ? ErrnoText(err) : detail + " (" + ErrnoText(err) + ")");
  Napi::Error error = Napi::Error::New(env, message);
  Napi::Object object = error.Value();
  object.Set("code", ErrnoCode(err));
  object.Set("errno", err);
  if (!log.empty()) object.Set("log", log);
  throw error;
}

void ThrowArgument(Napi::Env env, const std::string& message) {
  Napi::TypeError error = Napi::TypeError::New(env, message);
  error.Value().Set("code", "ERR_INVALID_ARG_TYPE");
  throw error;
}

LibbpfLog::LibbpfLog() : outer_(current_text) { current_text = &text_; }

LibbpfLog::~LibbpfLog() {
  current_text = outer_;
  if (!released_ && !text_.empty()) fputs(text_.c_str(), stderr);
}

std::string LibbpfLog::Release() {
  released_ = true;
  return std::move(text_);
}

void LibbpfLog::Install() { libbpf_set_print(PrintHook); }

}  // namespace vigil
