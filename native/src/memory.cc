// SPDX-License-Identifier: Apache-2.0
// releaseMemory(): hands back to the kernel the memory the process holds but no longer uses
// (src/sys/memory.ts). Node has no call for either half:
//   - V8's low-memory notification collects the whole heap with memory reduction: it compacts,
//     releases the emptied pages and shrinks the young generation to its minimum. Node gives
//     JavaScript only a plain collection (--expose-gc), which keeps the pages.
//   - glibc's malloc_trim(0) returns the free pages of every malloc arena, not only the top of
//     the main heap that free() returns by itself.
// N-API has no handle on the isolate: this file uses V8's API, from the headers of the Node the
// addon is built against (as the packages build it against the runtime they ship).
#include <malloc.h>
#include <v8.h>

#include "nsm_native.h"

namespace nsm {

Napi::Value ReleaseMemory(const Napi::CallbackInfo& info) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate != nullptr) isolate->LowMemoryNotification();
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
}

}  // namespace nsm
