// SPDX-License-Identifier: Apache-2.0
/*
 * A compiled gRPC client for bench/connect-local.mjs: unary calls over one HTTP/2 connection on
 * a unix socket, with libnghttp2 (what curl and others use) and nothing else. It stands where a
 * Go client (NSM's own SDK) would: its per-call work is a few microseconds, so the time it
 * measures is the server's and the transport's, not a client library's.
 *
 * The message is serialized and the answer deserialized by the caller (bench), outside the
 * timing; here the call is framed (5-byte gRPC prefix), sent as HEADERS + DATA, and timed until
 * the server's trailers have been read and its stream closed. The answer is checked:
 * grpc-status present and 0, and one whole length-prefixed message.
 *
 * Commands on stdin, one per line; answers on stdout, one line each:
 *   r PATH HEX   call PATH (/package.Service/Method) with the message HEX
 *                -> "<microseconds> <answer message hex>"
 *                or "status <code> <grpc-message>" for a non-OK status
 * Errors of the connection: "error <what>: <reason>" and exit status 1.
 *
 * Build: cc -O2 -o grpc-call grpc-call.c -lnghttp2     Run: grpc-call /path/to/agent.sock
 */
#define _GNU_SOURCE
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

#define MAXMSG (1 << 20)

static int fd = -1;

/* The call in flight: its framed request, the answer's bytes and status. */
static struct {
  int32_t stream;
  unsigned char *req;
  size_t req_len, req_off;
  unsigned char *data;
  size_t data_len;
  char status[16];
  char message[256];
  int closed;
} call;

static void die(const char *what, const char *why) {
  printf("error %s: %s\n", what, why);
  fflush(stdout);
  exit(1);
}

static ssize_t on_send(nghttp2_session *s, const uint8_t *buf, size_t len, int flags, void *u) {
  (void)s, (void)flags, (void)u;
  size_t off = 0;
  while (off < len) {
    ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
    off += (size_t)n;
  }
  return (ssize_t)len;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *u) {
  (void)s, (void)flags, (void)u;
  if (f->hd.type != NGHTTP2_HEADERS || f->hd.stream_id != call.stream) return 0;
  if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0 && valuelen < sizeof call.status) {
    memcpy(call.status, value, valuelen), call.status[valuelen] = 0;
  } else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0) {
    size_t n = valuelen < sizeof call.message - 1 ? valuelen : sizeof call.message - 1;
    memcpy(call.message, value, n), call.message[n] = 0;
  }
  return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t stream, const uint8_t *data, size_t len, void *u) {
  (void)s, (void)flags, (void)u;
  if (stream != call.stream) return 0;
  if (call.data_len + len > MAXMSG) return NGHTTP2_ERR_CALLBACK_FAILURE;
  memcpy(call.data + call.data_len, data, len);
  call.data_len += len;
  return 0;
}

static int on_close(nghttp2_session *s, int32_t stream, uint32_t code, void *u) {
  (void)s, (void)code, (void)u;
  if (stream == call.stream) call.closed = 1;
  return 0;
}

static ssize_t read_request(nghttp2_session *s, int32_t stream, uint8_t *buf, size_t len, uint32_t *flags,
                                  nghttp2_data_source *src, void *u) {
  (void)s, (void)stream, (void)src, (void)u;
  size_t n = call.req_len - call.req_off;
  if (n > len) n = len;
  memcpy(buf, call.req + call.req_off, n);
  call.req_off += n;
  if (call.req_off == call.req_len) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

static int hexval(int c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

#define HDR(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}

/* One unary call; returns its time in microseconds, or -1 (the status is in call.status). */
static double unary(nghttp2_session *session, const char *path) {
  nghttp2_nv hdrs[] = {
      HDR(":method", "POST"), HDR(":scheme", "http"), HDR(":authority", "localhost"), HDR(":path", path),
      HDR("content-type", "application/grpc"), HDR("te", "trailers"),
  };
  nghttp2_data_provider body = {.read_callback = read_request};
  static unsigned char in[65536];
  call.req_off = 0, call.data_len = 0, call.closed = 0, call.status[0] = 0, call.message[0] = 0;
  double t0 = now_us();
  call.stream = nghttp2_submit_request(session, NULL, hdrs, sizeof hdrs / sizeof hdrs[0], &body, NULL);
  if (call.stream < 0) die("submit", nghttp2_strerror(call.stream));
  while (!call.closed) {
    int rv = nghttp2_session_send(session);
    if (rv) die("send", nghttp2_strerror(rv));
    if (call.closed) break;
    ssize_t n = recv(fd, in, sizeof in, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die("recv", n ? strerror(errno) : "connection closed");
    ssize_t used = nghttp2_session_mem_recv(session, in, (size_t)n);
    if (used < 0) die("recv", nghttp2_strerror((int)used));
  }
  double t = now_us() - t0;
  /* Acknowledgements and window updates the answer asked for go out after the timing. */
  if (nghttp2_session_send(session)) die("send", "after the call");
  return t;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s SOCKET\n", argv[0]);
    return 2;
  }
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(argv[1]) >= sizeof sa.sun_path) die("socket path", "too long");
  strcpy(sa.sun_path, argv[1]);
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect", strerror(errno));

  nghttp2_session_callbacks *cb;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_send_callback(cb, on_send);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
  nghttp2_session *session;
  if (nghttp2_session_client_new(&session, cb, NULL)) die("session", "out of memory");
  nghttp2_session_callbacks_del(cb);
  if (nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, NULL, 0) || nghttp2_session_send(session)) die("settings", "send");

  call.req = malloc(5 + MAXMSG);
  call.data = malloc(MAXMSG);
  char *out = malloc(2 * MAXMSG + 64);
  size_t linecap = 0;
  char *line = NULL;
  ssize_t len;
  while ((len = getline(&line, &linecap, stdin)) > 0) {
    char path[256];
    int at = 0;
    if (sscanf(line, "r %255s %n", path, &at) != 1 || at == 0) {
      printf("error command: expected \"r PATH HEX\"\n");
      fflush(stdout);
      continue;
    }
    /* the framed request: flag 0 (not compressed), length, message */
    size_t n = 0;
    for (char *h = line + at; hexval(h[0]) >= 0 && hexval(h[1]) >= 0 && n < MAXMSG; h += 2) {
      call.req[5 + n++] = (unsigned char)(hexval(h[0]) << 4 | hexval(h[1]));
    }
    call.req[0] = 0;
    call.req[1] = n >> 24, call.req[2] = n >> 16, call.req[3] = n >> 8, call.req[4] = n;
    call.req_len = 5 + n;

    double us = unary(session, path);
    if (strcmp(call.status, "0") != 0) {
      printf("status %s %s\n", call.status[0] ? call.status : "missing", call.message);
    } else if (call.data_len < 5 || call.data[0] != 0 ||
               ((size_t)call.data[1] << 24 | (size_t)call.data[2] << 16 | (size_t)call.data[3] << 8 | call.data[4]) !=
                   call.data_len - 5) {
      printf("status bad-answer %zu bytes\n", call.data_len);
    } else {
      char *o = out + sprintf(out, "%.1f ", us);
      for (size_t i = 5; i < call.data_len; i++) o += sprintf(o, "%02x", call.data[i]);
      printf("%s\n", out);
    }
    fflush(stdout);
  }
  nghttp2_session_del(session);
  close(fd);
  return 0;
}
