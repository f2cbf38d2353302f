// SPDX-License-Identifier: Apache-2.0
// sd_notify(3) without libsystemd: one AF_UNIX datagram to $NOTIFY_SOCKET; and one datagram
// to any unix datagram socket (journald's native protocol).
// Node cannot send unix datagrams itself (dgram supports udp4/udp6 only).
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

#include "errors.h"
#include "nsm_native.h"

namespace nsm {

// sdNotify(state) -> boolean. false if $NOTIFY_SOCKET is unset or empty (not
// running under systemd with Type=notify); true once the datagram was sent.
// Throws on socket errors. "@name" addresses the abstract namespace.
Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) return ThrowArgType(env, "sdNotify: state must be a string");
  std::string state = info[0].As<Napi::String>().Utf8Value();

  const char* target = getenv("NOTIFY_SOCKET");
  if (target == nullptr || target[0] == '\0') return Napi::Boolean::New(env, false);
  std::string path(target);

  if (path[0] != '/' && path[0] != '@') return ThrowErrno(env, EAFNOSUPPORT, "connect", path);
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return ThrowErrno(env, ENAMETOOLONG, "connect", path);
  memcpy(addr.sun_path, path.data(), path.size());
  if (path[0] == '@') addr.sun_path[0] = '\0';  // abstract: no trailing NUL counted
  socklen_t len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + path.size() +
                                         (path[0] == '@' ? 0 : 1));

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(env, errno, "socket");
  ssize_t sent;
  do {
    sent = sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                  reinterpret_cast<struct sockaddr*>(&addr), len);
  } while (sent < 0 && errno == EINTR);
  int err = errno;
  close(fd);
  if (sent < 0) return ThrowErrno(env, err, "sendto", path);
  return Napi::Boolean::New(env, true);
}

// sendDatagram(path, buffer) -> undefined. One datagram to the AF_UNIX SOCK_DGRAM socket at
// `path` (a filesystem path). Throws on socket errors (ENOENT, ECONNREFUSED, EMSGSIZE, ...).
Napi::Value SendDatagram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) return ThrowArgType(env, "sendDatagram: path must be a string");
  if (!info[1].IsBuffer()) return ThrowArgType(env, "sendDatagram: data must be a Buffer");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  Napi::Buffer<char> data = info[1].As<Napi::Buffer<char>>();
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) return ThrowErrno(env, ENAMETOOLONG, "connect", path);
  memcpy(addr.sun_path, path.data(), path.size());
  socklen_t len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(env, errno, "socket");
  ssize_t sent;
  do {
    sent = sendto(fd, data.Data(), data.Length(), MSG_NOSIGNAL, reinterpret_cast<struct sockaddr*>(&addr), len);
  } while (sent < 0 && errno == EINTR);
  int err = errno;
  close(fd);
  if (sent < 0) return ThrowErrno(env, err, "sendto", path);
  return env.Undefined();
}

}  // namespace nsm
