// SPDX-License-Identifier: Apache-2.0
// Node-style errno errors for syscall failures.
#pragma once

#include <napi.h>
#include <string>

namespace nsm {

// Builds an Error shaped like Node's fs errors:
//   message "ENOENT: no such file or directory, setns '/run/netns/x'"
//   code 'ENOENT', errno -2 (negative, like Node), syscall 'setns', path (if given).
// `err` is a positive errno value.
Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall,
                       const std::string& path = std::string());

// Throws ErrnoError as a pending JS exception and returns undefined, for
// `return ThrowErrno(...)` in functions built without C++ exceptions.
Napi::Value ThrowErrno(Napi::Env env, int err, const char* syscall,
                       const std::string& path = std::string());

// Throws a TypeError with `code` ERR_INVALID_ARG_TYPE (as Node does for bad arguments).
Napi::Value ThrowArgType(Napi::Env env, const char* message);

}  // namespace nsm
