// SPDX-License-Identifier: Apache-2.0
// Batches of small file writes and removals, run on one libuv pool thread.
//
// The agent's state records (src/agent/state/store.ts) are small files replaced by
// write-to-temporary-then-rename. Through node:fs each record costs four pool round trips
// (open, write, close, rename), each with its callback and promise on the event loop, in the
// middle of the connects that put them. Here a whole batch is one pool job and one callback.
//
// Each operation is independent: its own errno (0: done) is reported, and a failure does not
// stop the operations after it. Operations run in the order given, so a path written twice in
// one batch ends with the later data.

#include <cerrno>
#include <fcntl.h>
#include <string>
#include <unistd.h>
#include <vector>

#include "errors.h"
#include "nsm_native.h"

namespace nsm {
namespace {

struct FileOp {
  std::string path;
  std::string tmp;  // empty: unlink `path`
  std::vector<uint8_t> data;
  mode_t mode = 0600;
};

// write(2) until all of `data` is written (a regular file may take it in parts).
int WriteAll(int fd, const uint8_t* data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += n;
    len -= static_cast<size_t>(n);
  }
  return 0;
}

// One operation; returns its errno (0: done).
int Run(const FileOp& op) {
  if (op.tmp.empty()) {
    if (unlink(op.path.c_str()) != 0 && errno != ENOENT) return errno;
    return 0;
  }
  int fd = open(op.tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, op.mode);
  if (fd < 0) return errno;
  int err = WriteAll(fd, op.data.data(), op.data.size());
  if (close(fd) != 0 && err == 0) err = errno;
  if (err == 0 && rename(op.tmp.c_str(), op.path.c_str()) != 0) err = errno;
  if (err != 0) unlink(op.tmp.c_str());  // nothing half-written is left behind
  return err;
}

class FilesWorker : public Napi::AsyncWorker {
 public:
  FilesWorker(Napi::Env env, std::vector<FileOp> ops)
      : Napi::AsyncWorker(env, "nsm:fileOps"), deferred_(Napi::Promise::Deferred::New(env)), ops_(std::move(ops)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    errnos_.reserve(ops_.size());
    for (const FileOp& op : ops_) errnos_.push_back(Run(op));
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Array out = Napi::Array::New(env, errnos_.size());
    for (size_t i = 0; i < errnos_.size(); i++) out.Set(static_cast<uint32_t>(i), Napi::Number::New(env, errnos_[i]));
    deferred_.Resolve(out);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }  // not used

 private:
  Napi::Promise::Deferred deferred_;
  std::vector<FileOp> ops_;
  std::vector<int> errnos_;
};

}  // namespace

Napi::Value FileOpsAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "fileOpsAsync(ops): ops must be an array of { path: string, tmp?: string, data?: Buffer, mode?: number }";
  if (info.Length() < 1 || !info[0].IsArray()) return ThrowArgType(env, usage);
  Napi::Array arr = info[0].As<Napi::Array>();
  std::vector<FileOp> ops(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsObject()) return ThrowArgType(env, usage);
    Napi::Object o = v.As<Napi::Object>();
    Napi::Value path = o.Get("path");
    Napi::Value tmp = o.Get("tmp");
    Napi::Value data = o.Get("data");
    Napi::Value mode = o.Get("mode");
    if (!path.IsString()) return ThrowArgType(env, usage);
    ops[i].path = path.As<Napi::String>().Utf8Value();
    if (tmp.IsUndefined() != data.IsUndefined()) return ThrowArgType(env, usage);  // both or neither
    if (!tmp.IsUndefined()) {
      if (!tmp.IsString() || !data.IsBuffer()) return ThrowArgType(env, usage);
      ops[i].tmp = tmp.As<Napi::String>().Utf8Value();
      if (ops[i].tmp.empty()) return ThrowArgType(env, usage);
      Napi::Buffer<uint8_t> b = data.As<Napi::Buffer<uint8_t>>();
      ops[i].data.assign(b.Data(), b.Data() + b.Length());  // copied: the caller may reuse it
    }
    if (!mode.IsUndefined()) {
      if (!mode.IsNumber()) return ThrowArgType(env, usage);
      ops[i].mode = static_cast<mode_t>(mode.As<Napi::Number>().Uint32Value() & 07777);
    }
  }
  auto* worker = new FilesWorker(env, std::move(ops));
  Napi::Promise promise = worker->Promise();
  worker->Queue();  // the worker deletes itself after OnOK
  return promise;
}

}  // namespace nsm
