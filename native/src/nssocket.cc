// SPDX-License-Identifier: Apache-2.0
// socketInNetns(netnsFd, type, address, port): a UDP or TCP socket created and bound inside a
// network namespace, returned as a file descriptor that Node wraps (dgram bind({fd}),
// net listen({fd})). Node cannot choose the namespace of its own sockets; a socket keeps the
// namespace it was created in, whatever thread later uses it.
//
// Runs on the calling (JS) thread, synchronously: setns(target), socket(), bind(), setns back
// (InNetns, netns.cc: the process aborts if switching back fails). Nothing blocks: socket and
// bind do not wait. TCP sockets get SO_REUSEADDR (a restarted agent rebinds at once) and are
// not listening yet (Node's listen({fd}) does that). The fd is O_NONBLOCK and close-on-exec;
// the caller owns it.
//
// Errors: the addon's errno errors (setns, socket, bind: EADDRINUSE, EADDRNOTAVAIL ...;
// inet_pton EINVAL for a bad address).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "errors.h"
#include "nsm_native.h"

namespace nsm {

Napi::Value SocketInNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) return ThrowArgType(env, "socketInNetns: netnsFd must be a file descriptor");
  int ns_fd = info[0].As<Napi::Number>().Int32Value();
  if (ns_fd < 0) return ThrowArgType(env, "socketInNetns: netnsFd must be a file descriptor");
  if (!info[1].IsString()) return ThrowArgType(env, "socketInNetns: type must be 'udp' or 'tcp'");
  std::string type = info[1].As<Napi::String>().Utf8Value();
  if (type != "udp" && type != "tcp") return ThrowArgType(env, "socketInNetns: type must be 'udp' or 'tcp'");
  if (!info[2].IsString()) return ThrowArgType(env, "socketInNetns: address must be a string");
  std::string address = info[2].As<Napi::String>().Utf8Value();
  if (!info[3].IsNumber()) return ThrowArgType(env, "socketInNetns: port must be a number");
  double port_d = info[3].As<Napi::Number>().DoubleValue();
  if (!(port_d >= 0 && port_d <= 65535) || port_d != static_cast<double>(static_cast<int>(port_d))) {
    return ThrowArgType(env, "socketInNetns: port must be an integer in 0..65535");
  }
  uint16_t port = static_cast<uint16_t>(port_d);

  union {
    sockaddr sa;
    sockaddr_in v4;
    sockaddr_in6 v6;
  } addr;
  std::memset(&addr, 0, sizeof addr);
  socklen_t alen = 0;
  if (inet_pton(AF_INET, address.c_str(), &addr.v4.sin_addr) == 1) {
    addr.v4.sin_family = AF_INET;
    addr.v4.sin_port = htons(port);
    alen = sizeof addr.v4;
  } else if (inet_pton(AF_INET6, address.c_str(), &addr.v6.sin6_addr) == 1) {
    addr.v6.sin6_family = AF_INET6;
    addr.v6.sin6_port = htons(port);
    alen = sizeof addr.v6;
  } else {
    return ThrowErrno(env, EINVAL, "inet_pton", address);
  }

  int sock = -1, err = 0;
  const char* failed = nullptr;
  const char* syscall = nullptr;
  int switch_err = InNetns(
      ns_fd,
      [&] {
        int kind = (type == "udp" ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC;
        sock = socket(addr.sa.sa_family, kind, 0);
        if (sock < 0) {
          err = errno;
          failed = "socket";
          return;
        }
        int one = 1;
        if (type == "tcp") setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (addr.sa.sa_family == AF_INET6) setsockopt(sock, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (bind(sock, &addr.sa, alen) != 0) {
          err = errno;
          failed = "bind";
          close(sock);
          sock = -1;
        }
      },
      &syscall);
  if (switch_err != 0) return ThrowErrno(env, switch_err, syscall);
  if (sock < 0) return ThrowErrno(env, err, failed, address + ":" + std::to_string(port));
  return Napi::Number::New(env, sock);
}

}  // namespace nsm
