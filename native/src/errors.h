// Errors thrown to JavaScript, and capture of libbpf's own messages.
#pragma once

#include <napi.h>

#include <string>

namespace vigil {

// Throws a JS Error "<what>: <detail> (<errno text>)" (or "<what>: <errno text>"
// without detail) carrying `code` ('EPERM', …) and `errno` (the positive number),
// so callers can match on them. `log`, when not empty, becomes a `log` property
// (libbpf's messages for the failed operation, e.g. the verifier log).
[[noreturn]] void ThrowErrno(Napi::Env env, const std::string& what, int err,
                             const std::string& detail = "", const std::string& log = "");

// Throws a TypeError for a bad argument, code 'ERR_INVALID_ARG_TYPE'.
[[noreturn]] void ThrowArgument(Napi::Env env, const std::string& message);

// Routes libbpf's messages. While a LibbpfLog is alive on a thread, warnings
// libbpf prints on that thread are collected instead of written to stderr, so
// a failing call can attach them to its error; on success (Release() not
// called) they are written to stderr when the LibbpfLog ends, as libbpf would.
class LibbpfLog {
 public:
  LibbpfLog();
  ~LibbpfLog();
  LibbpfLog(const LibbpfLog&) = delete;
  LibbpfLog& operator=(const LibbpfLog&) = delete;

  // The collected text; it will not be written to stderr any more.
  std::string Release();

  // Installs the print hook; call once when the addon loads.
  static void Install();

 private:
  std::string text_;
  std::string* outer_;  // an enclosing LibbpfLog's text, restored at the end
  bool released_ = false;
};

}  // namespace vigil
