// SPDX-License-Identifier: Apache-2.0
// Non-Linux build: the addon loads but exports nothing; src/sys/native.ts
// reports the missing functions as ENOSYS.
#include <napi.h>

namespace {
Napi::Object Init(Napi::Env, Napi::Object exports) { return exports; }
}  // namespace

NODE_API_MODULE(nsm_native, Init)
