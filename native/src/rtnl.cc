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
//   rtnlTransactAsync(fd, request) -> Promise<Buffer>
//                               the same on a libuv pool thread, for requests
//                               that wait in the kernel: a link deleted or
//                               moved to another namespace waits for an RCU
//                               grace period (tens of milliseconds) with the
//                               calling thread blocked, which must not be the
//                               event loop's.
//                               `fd` must be used by nothing else until the
//                               promise settles (src/sys/rtnl.ts keeps a
//                               second socket per namespace for these, one
//                               request at a time).
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

struct Failure {
  int err = 0;
  const char* syscall = nullptr;
};

// One transaction on `fd`: sends `data` in one send(), then reads until every
// request's seq got its NLMSG_ERROR or NLMSG_DONE, appending the replies to
// `out`. Touches no JS state: runs on the event loop or on a pool thread.
Failure Transact(int fd, const uint8_t* data, size_t len, std::vector<uint8_t>* out) {
  std::set<uint32_t> open;
  for (size_t off = 0; off + NLMSG_HDRLEN <= len;) {
    struct nlmsghdr h;
    memcpy(&h, data + off, sizeof h);
    if (h.nlmsg_len < NLMSG_HDRLEN || off + h.nlmsg_len > len) return {EINVAL, "sendmsg"};
    open.insert(h.nlmsg_seq);
    off += NLMSG_ALIGN(h.nlmsg_len);
  }
  if (open.empty()) return {EINVAL, "sendmsg"};

  ssize_t sent;
  do {
    sent = send(fd, data, len, 0);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) return {errno, "sendmsg"};

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
      if (r < 0) return {errno, "poll"};
      if (r == 0) return {ETIMEDOUT, "recvmsg"};
      continue;
    }
    if (n < 0) return {errno, "recvmsg"};  // ENOBUFS: replies were dropped
    if (static_cast<size_t>(n) > buf.size()) return {EMSGSIZE, "recvmsg"};
    for (size_t off = 0; off + NLMSG_HDRLEN <= static_cast<size_t>(n);) {
      struct nlmsghdr h;
      memcpy(&h, buf.data() + off, sizeof h);
      if (h.nlmsg_len < NLMSG_HDRLEN || off + h.nlmsg_len > static_cast<size_t>(n)) break;
      if (h.nlmsg_type == NLMSG_ERROR || h.nlmsg_type == NLMSG_DONE) open.erase(h.nlmsg_seq);
      off += NLMSG_ALIGN(h.nlmsg_len);
    }
    out->insert(out->end(), buf.data(), buf.data() + n);
    out->resize(NLMSG_ALIGN(out->size()));  // the next datagram's first message starts aligned
  }
  return {};
}

class TransactWorker : public Napi::AsyncWorker {
 public:
  TransactWorker(Napi::Env env, int fd, const uint8_t* data, size_t len)
      : Napi::AsyncWorker(env, "nsm:rtnlTransact"),
        deferred_(Napi::Promise::Deferred::New(env)),
        fd_(fd),
        request_(data, data + len) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override { failure_ = Transact(fd_, request_.data(), request_.size(), &replies_); }

  void OnOK() override {
    Napi::Env env = Env();
    if (failure_.err != 0) {
      deferred_.Reject(ErrnoError(env, failure_.err, failure_.syscall, std::string()).Value());
    } else {
      deferred_.Resolve(Napi::Buffer<uint8_t>::Copy(env, replies_.data(), replies_.size()));
    }
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }  // not used

 private:
  Napi::Promise::Deferred deferred_;
  int fd_;
  std::vector<uint8_t> request_;
  std::vector<uint8_t> replies_;
  Failure failure_;
};

bool Args(const Napi::CallbackInfo& info, const char* usage) {
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsBuffer()) {
    ThrowArgType(info.Env(), usage);
    return false;
  }
  return true;
}

}  // namespace

namespace {

// A bound NETLINK_ROUTE socket in the calling thread's netns, or -1 with *err and *syscall set.
int OpenSocket(int protocol, int* err, const char** syscall) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
  if (fd < 0) {
    *err = errno;
    *syscall = "socket";
    return -1;
  }
  int size = kRcvBuf;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);  // without CAP_NET_ADMIN: capped
  }
  int one = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);  // ACKs without the request echoed
  struct sockaddr_nl addr {};
  addr.nl_family = AF_NETLINK;
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0) {
    *err = errno;
    *syscall = "bind";
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

Napi::Value RtnlOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int err = 0;
  const char* syscall = nullptr;
  int fd = -1;
  int protocol = NETLINK_ROUTE;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    protocol = info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : -1;
    if (protocol != NETLINK_ROUTE && protocol != NETLINK_GENERIC) {
      return ThrowArgType(env, "rtnlOpen(netnsFd, protocol): protocol must be NETLINK_ROUTE (0) or NETLINK_GENERIC (16)");
    }
  }
  if (info.Length() > 0 && !info[0].IsUndefined()) {
    if (!info[0].IsNumber() || info[0].As<Napi::Number>().Int32Value() < 0) {
      return ThrowArgType(env, "rtnlOpen(netnsFd): netnsFd must be a non-negative integer");
    }
    int ns = info[0].As<Napi::Number>().Int32Value();
    if (int e = InNetns(ns, [&] { fd = OpenSocket(protocol, &err, &syscall); }, &syscall)) return ThrowErrno(env, e, syscall);
  } else {
    fd = OpenSocket(protocol, &err, &syscall);
  }
  if (fd < 0) return ThrowErrno(env, err, syscall);
  return Napi::Number::New(env, fd);
}

Napi::Value RtnlTransact(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Args(info, "rtnlTransact(fd, request): fd must be a number and request a Buffer")) return env.Undefined();
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<uint8_t> req = info[1].As<Napi::Buffer<uint8_t>>();
  std::vector<uint8_t> out;
  Failure f = Transact(fd, req.Data(), req.Length(), &out);
  if (f.err != 0) return ThrowErrno(env, f.err, f.syscall);
  return Napi::Buffer<uint8_t>::Copy(env, out.data(), out.size());
}

Napi::Value RtnlTransactAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Args(info, "rtnlTransactAsync(fd, request): fd must be a number and request a Buffer")) return env.Undefined();
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<uint8_t> req = info[1].As<Napi::Buffer<uint8_t>>();
  auto* worker = new TransactWorker(env, fd, req.Data(), req.Length());  // copies the request
  Napi::Promise promise = worker->Promise();
  worker->Queue();  // the worker deletes itself after OnOK
  return promise;
}

}  // namespace nsm
