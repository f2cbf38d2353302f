// SPDX-License-Identifier: Apache-2.0
// Module registration. The surface is typed in native/index.d.ts; the only
// JS consumer is src/sys/native.ts.
#include "nsm_native.h"

namespace nsm {
Napi::Value IcmpEcho(const Napi::CallbackInfo& info);       // icmp.cc
Napi::Value SocketInNetns(const Napi::CallbackInfo& info);  // nssocket.cc
}  // namespace nsm

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  if (!nsm::InitNetns(env)) return exports;  // pending exception fails the require()
  exports.Set("withNetns", Napi::Function::New(env, nsm::WithNetns, "withNetns"));
  exports.Set("createNetns", Napi::Function::New(env, nsm::CreateNetns, "createNetns"));
  exports.Set("deleteNetns", Napi::Function::New(env, nsm::DeleteNetns, "deleteNetns"));
  exports.Set("openTun", Napi::Function::New(env, nsm::OpenTun, "openTun"));
  exports.Set("sdNotify", Napi::Function::New(env, nsm::SdNotify, "sdNotify"));
  exports.Set("sendDatagram", Napi::Function::New(env, nsm::SendDatagram, "sendDatagram"));
  exports.Set("peerCredentials", Napi::Function::New(env, nsm::PeerCredentials, "peerCredentials"));
  exports.Set("unixCall", Napi::Function::New(env, nsm::UnixCall, "unixCall"));
  exports.Set("icmpEcho", Napi::Function::New(env, nsm::IcmpEcho, "icmpEcho"));
  exports.Set("socketInNetns", Napi::Function::New(env, nsm::SocketInNetns, "socketInNetns"));
  exports.Set("rtnlOpen", Napi::Function::New(env, nsm::RtnlOpen, "rtnlOpen"));
  exports.Set("rtnlTransact", Napi::Function::New(env, nsm::RtnlTransact, "rtnlTransact"));
  exports.Set("rtnlTransactAsync", Napi::Function::New(env, nsm::RtnlTransactAsync, "rtnlTransactAsync"));
  exports.Set("fileOpsAsync", Napi::Function::New(env, nsm::FileOpsAsync, "fileOpsAsync"));
  exports.Set("releaseMemory", Napi::Function::New(env, nsm::ReleaseMemory, "releaseMemory"));
  exports.Set("homeNetnsFd", Napi::Number::New(env, nsm::HomeNetnsFd()));
  return exports;
}

}  // namespace

NODE_API_MODULE(nsm_native, Init)
