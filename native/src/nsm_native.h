// SPDX-License-Identifier: Apache-2.0
// Internal declarations shared by the nsm_native translation units.
//
// Contract for every exported function: syscall failures are thrown as
// Node-style errors (see errors.h); nothing here ever leaves a thread in a
// network namespace other than the one it started in.
#pragma once

#include <napi.h>

#include <functional>

namespace nsm {

// netns.cc
bool InitNetns(Napi::Env env);  // opens the home-netns fd; false + pending error on failure
int HomeNetnsFd();              // that fd (owned by the addon, never closed)
// Runs fn (native code only, no JS) with the calling thread in netns `target`, then switches it
// back to where it was (aborting the process if that fails, as withNetns). 0, or the errno of
// the failed switch with *syscall set ("setns", "open"); fn has not run then.
int InNetns(int target, const std::function<void()>& fn, const char** syscall);
Napi::Value WithNetns(const Napi::CallbackInfo& info);
Napi::Value CreateNetns(const Napi::CallbackInfo& info);
Napi::Value DeleteNetns(const Napi::CallbackInfo& info);

// tun.cc
Napi::Value OpenTun(const Napi::CallbackInfo& info);

// notify.cc
Napi::Value SdNotify(const Napi::CallbackInfo& info);
Napi::Value SendDatagram(const Napi::CallbackInfo& info);

// getsockopt(SO_PEERCRED) on a connected unix socket: {pid, uid, gid}.
Napi::Value PeerCredentials(const Napi::CallbackInfo& info);
Napi::Value UnixCall(const Napi::CallbackInfo& info);

// rtnl.cc: rtnetlink transactions (synchronous, and on the libuv pool).
Napi::Value RtnlOpen(const Napi::CallbackInfo& info);
Napi::Value RtnlTransact(const Napi::CallbackInfo& info);
Napi::Value RtnlTransactAsync(const Napi::CallbackInfo& info);

// files.cc: batches of small file writes (temporary + rename) and removals on the libuv pool.
Napi::Value FileOpsAsync(const Napi::CallbackInfo& info);

// memory.cc
Napi::Value ReleaseMemory(const Napi::CallbackInfo& info);

}  // namespace nsm
