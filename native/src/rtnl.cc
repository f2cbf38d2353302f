// SPDX-License-Identifier: Apache-2.0
// Synchronous rtnetlink transactions for src/sys/rtnl.ts.
//
// rtnetlink handles a request inside the sendmsg that carries it: when send()
// returns, the answers (data, then the ACK or error; or a dump's first part)
// are already queued on the socket. So a transaction is one send and a few
// non-blocking reads on the calling thread, with no event-loop round trip and
// no per-request promise machinery; this is what bench/floor/veth-floor.c
// does, and it is the floor of the local vWire (bench/connect-local.mjs).
// Reading a dump's part lets the kernel queue the next one (netlink_recvmsg),
// so dumps complete the same way.
//
//   rtnlOpen() -> fd            NETLINK_ROUTE socket in the calling thread's
//                               netns (callers open it inside withNetns),
//                               bound, 1 MiB receive buffer, NETLINK_CAP_ACK
//   rtnlTransact(fd, request)   sends `request` (one or more nlmsghdr
//                               messages) in one send(), then reads until
//                               every request's seq got its NLMSG_ERROR (ACK
//                               or error) or NLMSG_DONE; returns the replies
//                               as they came (a Buffer of nlmsghdr messages;
//                               messages of other seqs are left in, the
//                               caller matches by seq)
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

#include "errors.h"
#include "nsm_native.h"

namespace nsm {

namespace {

constexpr int kRcvBuf = 1 << 20;
// A reply that has not come within this long was lost (it never should be).
constexpr int kReplyTimeoutMs = 5000;

}  // namespace

Napi::Value RtnlOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return ThrowErrno(env, errno, "socket");
  int size = kRcvBuf;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);  // without CAP_NET_ADMIN: capped
  }
  int one = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);  // ACKs without the request echoed
  struct sockaddr_nl addr {};
  addr.nl_family = AF_NETLINK;
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, err, "bind");
  }
  return Napi::Number::New(env, fd);
}

Napi::Value RtnlTransact(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsBuffer()) {
    return ThrowArgType(env, "rtnlTransact(fd, request): fd must be a number and request a Buffer");
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<uint8_t> req = info[1].As<Napi::Buffer<uint8_t>>();
  const uint8_t* data = req.Data();
  size_t len = req.Length();

  std::set<uint32_t> open;
  for (size_t off = 0; off + NLMSG_HDRLEN <= len;) {
    struct nlmsghdr h;
    memcpy(&h, data + off, sizeof h);
    if (h.nlmsg_len < NLMSG_HDRLEN || off + h.nlmsg_len > len) return ThrowErrno(env, EINVAL, "sendmsg");
    open.insert(h.nlmsg_seq);
    off += NLMSG_ALIGN(h.nlmsg_len);
  }
  if (open.empty()) return ThrowErrno(env, EINVAL, "sendmsg");

  ssize_t sent;
  do {
    sent = send(fd, data, len, 0);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) return ThrowErrno(env, errno, "sendmsg");

  std::vector<uint8_t> out;
  // Reused (and not zeroed) across calls of this thread.
  thread_local static std::vector<uint8_t> buf(64 * 1024);
  while (!open.empty()) {
    ssize_t n;
    do {
      n = recv(fd, buf.data(), buf.size(), MSG_DONTWAIT | MSG_TRUNC);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd p = {fd, POLLIN, 0};
      int r;
      do {
        r = poll(&p, 1, kReplyTimeoutMs);
      } while (r < 0 && errno == EINTR);
      if (r < 0) return ThrowErrno(env, errno, "poll");
      if (r == 0) return ThrowErrno(env, ETIMEDOUT, "recvmsg");
      continue;
    }
    if (n < 0) return ThrowErrno(env, errno, "recvmsg");  // ENOBUFS: replies were dropped
    if (static_cast<size_t>(n) > buf.size()) return ThrowErrno(env, EMSGSIZE, "recvmsg");
    for (size_t off = 0; off + NLMSG_HDRLEN <= static_cast<size_t>(n);) {
      struct nlmsghdr h;
      memcpy(&h, buf.data() + off, sizeof h);
      if (h.nlmsg_len < NLMSG_HDRLEN || off + h.nlmsg_len > static_cast<size_t>(n)) break;
      if (h.nlmsg_type == NLMSG_ERROR || h.nlmsg_type == NLMSG_DONE) open.erase(h.nlmsg_seq);
      off += NLMSG_ALIGN(h.nlmsg_len);
    }
    out.insert(out.end(), buf.data(), buf.data() + n);
    out.resize(NLMSG_ALIGN(out.size()));  // the next datagram's first message starts aligned
  }
  return Napi::Buffer<uint8_t>::Copy(env, out.data(), out.size());
}

}  // namespace nsm
