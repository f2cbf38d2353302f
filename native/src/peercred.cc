// SPDX-License-Identifier: Apache-2.0
// peerCredentials(fd): the pid, uid and gid of the process at the other end of a connected
// unix socket (SO_PEERCRED), so the agent can refuse local API callers that are neither root
// nor allowed by its configuration. Node exposes no such call.
#include <sys/socket.h>
#include <sys/types.h>
#include <cerrno>
#include "nsm_native.h"
#include "errors.h"

namespace nsm {

Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError err = Napi::TypeError::New(env, "peerCredentials(fd): fd must be a number");
    err.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
    err.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct ucred cred {};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return ThrowErrno(env, errno, "getsockopt");
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, cred.pid));
  out.Set("uid", Napi::Number::New(env, cred.uid));
  out.Set("gid", Napi::Number::New(env, cred.gid));
  return out;
}

}  // namespace nsm
