// SPDX-License-Identifier: Apache-2.0
#include "errors.h"

#include <uv.h>

namespace nsm {

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& path) {
  // libuv's tables are the ones Node itself uses, so names and texts match
  // what fs/net errors say for the same errno.
  char name[64];
  char text[256];
  uv_err_name_r(-err, name, sizeof name);
  uv_strerror_r(-err, text, sizeof text);

  std::string message = std::string(name) + ": " + text + ", " + syscall;
  if (!path.empty()) message += " '" + path + "'";

  napi_value code_v = nullptr;
  napi_value message_v = nullptr;
  napi_value error_v = nullptr;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code_v);
  napi_create_string_utf8(env, message.c_str(), message.size(), &message_v);
  napi_create_error(env, code_v, message_v, &error_v);

  Napi::Error error(env, error_v);
  error.Set("errno", Napi::Number::New(env, -err));
  error.Set("syscall", Napi::String::New(env, syscall));
  if (!path.empty()) error.Set("path", Napi::String::New(env, path));
  return error;
}

Napi::Value ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& path) {
  ErrnoError(env, err, syscall, path).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowArgType(Napi::Env env, const char* message) {
  Napi::TypeError error = Napi::TypeError::New(env, message);
  error.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
  error.ThrowAsJavaScriptException();
  return env.Undefined();
}

}  // namespace nsm
