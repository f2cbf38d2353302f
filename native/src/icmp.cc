// SPDX-License-Identifier: Apache-2.0
// icmpEcho(netnsFd, src, dst, timeoutMs, count, id?): Promise<number>
//
// Data-plane liveness probe (NSM's kernel liveness check): ICMP / ICMPv6 echo
// requests from `src` to `dst`, sent from inside a network namespace, resolving
// to the number of matching echo replies. Node has no raw sockets, hence this.
//
// Threading and namespaces:
//  * Everything blocking runs in an AsyncWorker on the libuv pool; the JS
//    thread only parses arguments and dups the namespace fd (so the caller may
//    close its fd as soon as the call returns).
//  * On the pool thread: remember the thread's netns, setns(target), socket(),
//    bind(src), setns(back). The socket stays in the target namespace; the
//    thread is back in its own namespace before any send/recv happens. If the
//    switch back fails the process aborts (a pool thread silently left in a
//    foreign namespace would run later getaddrinfo/sockets there).
//  * A netns fd of -1 means the agent's home namespace (homeNetnsFd), so the
//    result does not depend on which namespace a pool thread was created in.
//
// Probe: `count` echo requests spread evenly over `timeoutMs` (first one at
// once), stopping as soon as a matching reply arrives (the caller only needs
// one); replies are matched on identifier, sequence (< sent), source address
// == dst and an 8-byte per-call cookie in the payload. Raw ICMP sockets see
// every ICMP packet of the namespace, so concurrent probes need distinct
// identifiers (a process-wide counter, seeded randomly) and a socket filter
// (ICMP_FILTER / ICMP6_FILTER on the type, classic BPF on the identifier)
// keeps other probes' traffic out of each socket.
//
// Cost: a dead pair holds one pool thread for the whole timeout.
//
// Errors reject with the addon's errno errors (errors.h): bad address EINVAL
// ('inet_pton'), setns, socket, bind (EADDRNOTAVAIL: src is not in the ns),
// sendto (ENETUNREACH: no route). Transient send failures (EAGAIN, ENOBUFS,
// EINTR) count as lost packets. No reply is not an error: it resolves 0.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/icmp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "errors.h"
#include "nsm_native.h"

namespace nsm {
namespace {

constexpr size_t kPayload = 8;  // the per-call cookie
constexpr uint8_t kEchoRequest4 = 8, kEchoReply4 = 0;
constexpr uint8_t kEchoRequest6 = 128, kEchoReply6 = 129;

uint64_t Random64() {
  uint64_t v = 0;
  if (getrandom(&v, sizeof v, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof v)) {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    v = (static_cast<uint64_t>(ts.tv_sec) << 32) ^ static_cast<uint64_t>(ts.tv_nsec) ^
        (static_cast<uint64_t>(getpid()) << 48);
  }
  return v;
}

// Identifiers for calls that do not pass one: distinct for 65536 consecutive
// calls in this process; the random start makes clashes with another process
// running the same code unlikely (and the cookie filters those out anyway).
std::atomic<uint32_t> g_next_id{static_cast<uint32_t>(Random64())};

int64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

uint16_t Checksum(const uint8_t* p, size_t n) {
  uint32_t sum = 0;
  for (; n > 1; p += 2, n -= 2) sum += (static_cast<uint32_t>(p[0]) << 8) | p[1];
  if (n == 1) sum += static_cast<uint32_t>(p[0]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons(static_cast<uint16_t>(~sum));
}

union SockAddr {
  sockaddr sa;
  sockaddr_in v4;
  sockaddr_in6 v6;
};

bool ParseAddr(const std::string& text, SockAddr* out, socklen_t* len) {
  std::memset(out, 0, sizeof *out);
  if (inet_pton(AF_INET, text.c_str(), &out->v4.sin_addr) == 1) {
    out->v4.sin_family = AF_INET;
    *len = sizeof out->v4;
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), &out->v6.sin6_addr) == 1) {
    out->v6.sin6_family = AF_INET6;
    *len = sizeof out->v6;
    return true;
  }
  return false;
}

class EchoWorker : public Napi::AsyncWorker {
 public:
  EchoWorker(Napi::Env env, int ns_fd, bool own_fd, const SockAddr& src, const SockAddr& dst,
             socklen_t alen, std::string src_text, std::string dst_text, double timeout_ms,
             int count, uint16_t id)
      : Napi::AsyncWorker(env, "nsm:icmpEcho"),
        deferred_(Napi::Promise::Deferred::New(env)),
        ns_fd_(ns_fd),
        own_fd_(own_fd),
        src_(src),
        dst_(dst),
        alen_(alen),
        src_text_(std::move(src_text)),
        dst_text_(std::move(dst_text)),
        timeout_ns_(static_cast<int64_t>(timeout_ms * 1e6)),
        count_(count),
        id_(id),
        cookie_(Random64()) {}

  ~EchoWorker() override {
    if (own_fd_ && ns_fd_ >= 0) close(ns_fd_);
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    int sock = OpenInNetns();
    if (sock < 0) return;
    Probe(sock);
    close(sock);
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_ != 0) {
      deferred_.Reject(ErrnoError(env, err_, syscall_, path_).Value());
    } else {
      deferred_.Resolve(Napi::Number::New(env, replies_));
    }
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }  // not used

 private:
  bool v6() const { return src_.sa.sa_family == AF_INET6; }

  void Fail(int err, const char* syscall, const std::string& path = std::string()) {
    err_ = err;
    syscall_ = syscall;
    path_ = path;
  }

  // Returns the socket (in the target ns, bound to src) or -1 with the error set.
  int OpenInNetns() {
    int back = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (back < 0) {
      Fail(errno, "open", "/proc/thread-self/ns/net");
      return -1;
    }
    if (setns(ns_fd_, CLONE_NEWNET) != 0) {
      Fail(errno, "setns");
      close(back);
      return -1;
    }
    int sock = OpenSocket();
    int err = errno;
    if (setns(back, CLONE_NEWNET) != 0) {
      napi_fatal_error("nsm_native icmpEcho", NAPI_AUTO_LENGTH,
                       "cannot restore a pool thread's network namespace; aborting",
                       NAPI_AUTO_LENGTH);
    }
    close(back);
    errno = err;
    return sock;
  }

  int OpenSocket() {
    int family = v6() ? AF_INET6 : AF_INET;
    int proto = v6() ? static_cast<int>(IPPROTO_ICMPV6) : static_cast<int>(IPPROTO_ICMP);
    int sock = socket(family, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, proto);
    if (sock < 0) {
      Fail(errno, "socket");
      return -1;
    }
    // Filters cut wake-ups from unrelated ICMP traffic; they are an optimisation,
    // replies are matched in Probe() regardless, so failures are ignored.
    if (v6()) {
      icmp6_filter filter;
      ICMP6_FILTER_SETBLOCKALL(&filter);
      ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &filter);
      setsockopt(sock, IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof filter);
    } else {
      icmp_filter filter{~(1U << ICMP_ECHOREPLY)};  // bits set = types dropped
      setsockopt(sock, SOL_RAW, ICMP_FILTER, &filter, sizeof filter);
    }
    // Classic BPF on the echo identifier. IPv4 raw sockets receive the IP header
    // (variable length: X = 4 * IHL); ICMPv6 ones start at the ICMPv6 header.
    sock_filter code4[] = {
        BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0),
        BPF_STMT(BPF_LD | BPF_H | BPF_IND, 4),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, id_, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, 0xffffffffU),
        BPF_STMT(BPF_RET | BPF_K, 0),
    };
    sock_filter code6[] = {
        BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 4),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, id_, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, 0xffffffffU),
        BPF_STMT(BPF_RET | BPF_K, 0),
    };
    sock_fprog prog{};
    if (v6()) {
      prog.len = sizeof code6 / sizeof code6[0];
      prog.filter = code6;
    } else {
      prog.len = sizeof code4 / sizeof code4[0];
      prog.filter = code4;
    }
    setsockopt(sock, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog);

    if (bind(sock, &src_.sa, alen_) != 0) {
      Fail(errno, "bind", src_text_);
      close(sock);
      return -1;
    }
    return sock;
  }

  // Returns false (error set) if sending failed for good.
  bool Send(int sock, uint16_t seq) {
    uint8_t pkt[8 + kPayload] = {};
    pkt[0] = v6() ? kEchoRequest6 : kEchoRequest4;
    uint16_t nid = htons(id_), nseq = htons(seq);
    std::memcpy(pkt + 4, &nid, 2);
    std::memcpy(pkt + 6, &nseq, 2);
    std::memcpy(pkt + 8, &cookie_, kPayload);
    if (!v6()) {  // the kernel fills in the ICMPv6 checksum (IPV6_CHECKSUM)
      uint16_t sum = Checksum(pkt, sizeof pkt);
      std::memcpy(pkt + 2, &sum, 2);
    }
    for (;;) {
      if (sendto(sock, pkt, sizeof pkt, 0, &dst_.sa, alen_) >= 0) return true;
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return true;  // lost packet
      Fail(errno, "sendto", dst_text_);
      return false;
    }
  }

  // Reads everything queued; counts new matching replies.
  void Drain(int sock, std::vector<bool>* seen, int sent) {
    uint8_t buf[1500];
    for (;;) {
      SockAddr from{};
      socklen_t flen = sizeof from;
      ssize_t n = recvfrom(sock, buf, sizeof buf, 0, &from.sa, &flen);
      if (n < 0) {
        if (errno == EINTR) continue;
        // EAGAIN: drained. Anything else is a (consumed) asynchronous ICMP error
        // reported on the socket: keep waiting for replies until the deadline.
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        continue;
      }
      const uint8_t* icmp = buf;
      size_t len = static_cast<size_t>(n);
      if (v6()) {
        if (from.sa.sa_family != AF_INET6 ||
            std::memcmp(&from.v6.sin6_addr, &dst_.v6.sin6_addr, sizeof(in6_addr)) != 0) continue;
        if (len < 8 + kPayload || icmp[0] != kEchoReply6) continue;
      } else {
        if (from.sa.sa_family != AF_INET || from.v4.sin_addr.s_addr != dst_.v4.sin_addr.s_addr) continue;
        if (len < 20) continue;
        size_t ihl = static_cast<size_t>(buf[0] & 0x0f) * 4;
        if (ihl < 20 || len < ihl + 8 + kPayload) continue;
        icmp = buf + ihl;
        len -= ihl;
        if (icmp[0] != kEchoReply4) continue;
      }
      if (icmp[1] != 0) continue;
      uint16_t id = static_cast<uint16_t>((icmp[4] << 8) | icmp[5]);
      uint16_t seq = static_cast<uint16_t>((icmp[6] << 8) | icmp[7]);
      if (id != id_ || seq >= sent || std::memcmp(icmp + 8, &cookie_, kPayload) != 0) continue;
      if ((*seen)[seq]) continue;  // duplicate
      (*seen)[seq] = true;
      replies_++;
    }
  }

  void Probe(int sock) {
    const int64_t start = NowNs();
    const int64_t deadline = start + timeout_ns_;
    const int64_t interval = timeout_ns_ / count_;
    std::vector<bool> seen(static_cast<size_t>(count_), false);
    int sent = 0;
    int64_t next_send = start;
    for (;;) {
      if (replies_ > 0) return;
      int64_t now = NowNs();
      if (now >= deadline) return;
      if (sent < count_ && now >= next_send) {
        if (!Send(sock, static_cast<uint16_t>(sent))) return;
        sent++;
        next_send = start + interval * sent;
        continue;
      }
      int64_t until = sent < count_ && next_send < deadline ? next_send : deadline;
      int64_t wait = until - now;
      timespec ts{static_cast<time_t>(wait / 1000000000), static_cast<long>(wait % 1000000000)};
      pollfd pfd{sock, POLLIN, 0};
      int r = ppoll(&pfd, 1, &ts, nullptr);
      if (r < 0 && errno != EINTR) {
        Fail(errno, "ppoll");
        return;
      }
      if (r > 0) Drain(sock, &seen, sent);
    }
  }

  Napi::Promise::Deferred deferred_;
  int ns_fd_;
  bool own_fd_;
  SockAddr src_, dst_;
  socklen_t alen_;
  std::string src_text_, dst_text_;
  int64_t timeout_ns_;
  int count_;
  uint16_t id_;
  uint64_t cookie_;

  // Results, written on the pool thread, read in OnOK.
  int replies_ = 0;
  int err_ = 0;
  const char* syscall_ = nullptr;
  std::string path_;
};

Napi::Value Rejected(Napi::Env env, int err, const char* syscall, const std::string& path) {
  auto deferred = Napi::Promise::Deferred::New(env);
  deferred.Reject(ErrnoError(env, err, syscall, path).Value());
  return deferred.Promise();
}

bool IsInt(const Napi::Value& v, double lo, double hi, double* out) {
  if (!v.IsNumber()) return false;
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= lo && d <= hi) || d != static_cast<double>(static_cast<int64_t>(d))) return false;
  *out = d;
  return true;
}

}  // namespace

Napi::Value IcmpEcho(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double fd_d = 0, count_d = 0, id_d = -1;
  if (!IsInt(info[0], -1, 2147483647.0, &fd_d)) {
    return ThrowArgType(env, "icmpEcho: netnsFd must be a file descriptor or -1");
  }
  if (!info[1].IsString() || !info[2].IsString()) {
    return ThrowArgType(env, "icmpEcho: src and dst must be strings");
  }
  if (!info[3].IsNumber()) return ThrowArgType(env, "icmpEcho: timeoutMs must be a number");
  double timeout_ms = info[3].As<Napi::Number>().DoubleValue();
  if (!(timeout_ms > 0 && timeout_ms <= 3600e3)) {
    return ThrowArgType(env, "icmpEcho: timeoutMs must be > 0 and <= 3600000");
  }
  if (!IsInt(info[4], 1, 65535, &count_d)) {
    return ThrowArgType(env, "icmpEcho: count must be an integer in 1..65535");
  }
  if (info.Length() > 5 && !info[5].IsUndefined() && !IsInt(info[5], 0, 65535, &id_d)) {
    return ThrowArgType(env, "icmpEcho: id must be an integer in 0..65535");
  }

  std::string src = info[1].As<Napi::String>().Utf8Value();
  std::string dst = info[2].As<Napi::String>().Utf8Value();
  SockAddr s{}, d{};
  socklen_t slen = 0, dlen = 0;
  if (!ParseAddr(src, &s, &slen)) return Rejected(env, EINVAL, "inet_pton", src);
  if (!ParseAddr(dst, &d, &dlen)) return Rejected(env, EINVAL, "inet_pton", dst);
  if (s.sa.sa_family != d.sa.sa_family) return Rejected(env, EAFNOSUPPORT, "icmpEcho", src + " -> " + dst);

  int ns_fd = HomeNetnsFd();
  bool own = false;
  if (fd_d >= 0) {
    // Dup now so the caller may close its fd once this returns.
    ns_fd = fcntl(static_cast<int>(fd_d), F_DUPFD_CLOEXEC, 0);
    if (ns_fd < 0) return Rejected(env, errno, "fcntl", std::string());
    own = true;
  }
  uint16_t id = id_d >= 0 ? static_cast<uint16_t>(id_d) : static_cast<uint16_t>(g_next_id.fetch_add(1));

  auto* worker = new EchoWorker(env, ns_fd, own, s, d, slen, src, dst, timeout_ms,
                                static_cast<int>(count_d), id);
  Napi::Promise promise = worker->Promise();
  worker->Queue();  // the worker deletes itself after OnOK
  return promise;
}

}  // namespace nsm
