// SPDX-License-Identifier: Apache-2.0
// unixCall(path, request, timeoutMs, maxBytes): one request-answer exchange on a unix stream
// socket, done synchronously: connect, write the request, read until the other side closes.
// For one-shot command-line clients (`nsm-agent status` on the agent's systemd socket), which
// otherwise load node:net and its streams and run the event loop just to make one call.
// The whole exchange shares one deadline; an answer longer than maxBytes is refused (EMSGSIZE).
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "errors.h"
#include "nsm_native.h"

namespace nsm {

namespace {

int64_t NowMs() {
  struct timespec ts {};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Waits for `events` on fd until the deadline; 0, or an errno (ETIMEDOUT when it passed).
int WaitFor(int fd, short events, int64_t deadline) {
  for (;;) {
    int64_t left = deadline - NowMs();
    if (left <= 0) return ETIMEDOUT;
    struct pollfd p {fd, events, 0};
    int n = poll(&p, 1, static_cast<int>(left > 60000 ? 60000 : left));
    if (n > 0) return 0;
    if (n < 0 && errno != EINTR) return errno;
  }
}

// Closes the socket on every way out.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

}  // namespace

Napi::Value UnixCall(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsString() || !info[1].IsBuffer() || !info[2].IsNumber() || !info[3].IsNumber()) {
    return ThrowArgType(env, "unixCall(path, request, timeoutMs, maxBytes): string, Buffer, number, number expected");
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  Napi::Buffer<char> request = info[1].As<Napi::Buffer<char>>();
  int64_t deadline = NowMs() + info[2].As<Napi::Number>().Int64Value();
  size_t max_bytes = static_cast<size_t>(info[3].As<Napi::Number>().Int64Value());

  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) return ThrowErrno(env, ENAMETOOLONG, "connect", path);
  memcpy(addr.sun_path, path.data(), path.size());

  Fd sock{socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
  if (sock.fd < 0) return ThrowErrno(env, errno, "socket", path);
  if (connect(sock.fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) != 0) {
    // a listener whose backlog is full: wait for room, then the connect's own result
    if (errno != EAGAIN && errno != EINPROGRESS) return ThrowErrno(env, errno, "connect", path);
    int err = WaitFor(sock.fd, POLLOUT, deadline);
    if (err) return ThrowErrno(env, err, "connect", path);
    socklen_t len = sizeof(err);
    if (getsockopt(sock.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return ThrowErrno(env, errno, "getsockopt", path);
    if (err) return ThrowErrno(env, err, "connect", path);
  }

  const char* out = request.Data();
  size_t left = request.Length();
  while (left > 0) {
    ssize_t n = send(sock.fd, out, left, MSG_NOSIGNAL);
    if (n > 0) {
      out += n;
      left -= static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return ThrowErrno(env, errno, "write", path);
    int err = WaitFor(sock.fd, POLLOUT, deadline);
    if (err) return ThrowErrno(env, err, "write", path);
  }

  std::vector<char> answer;
  char chunk[65536];
  for (;;) {
    ssize_t n = recv(sock.fd, chunk, sizeof(chunk), 0);
    if (n == 0) break;
    if (n > 0) {
      if (answer.size() + static_cast<size_t>(n) > max_bytes) return ThrowErrno(env, EMSGSIZE, "read", path);
      answer.insert(answer.end(), chunk, chunk + n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return ThrowErrno(env, errno, "read", path);
    int err = WaitFor(sock.fd, POLLIN, deadline);
    if (err) return ThrowErrno(env, err, "read", path);
  }
  return Napi::Buffer<char>::Copy(env, answer.data(), answer.size());
}

}  // namespace nsm
