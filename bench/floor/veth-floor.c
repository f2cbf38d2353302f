// SPDX-License-Identifier: Apache-2.0
/*
 * The raw-netlink floor of a local vWire: the same kernel work as the agent's KERNEL mechanism
 * (src/mechanisms/kernel/vwire.ts), issued by a minimal C program with no library:
 *
 *   socket A (client namespace):  RTM_NEWLINK veth c<i> (up, fixed MAC) with peer e<i> (fixed MAC,
 *                                 IFLA_NET_NS_FD = endpoint namespace): one request, both ends
 *   socket B (endpoint namespace): RTM_SETLINK e<i> up (by name; a veth peer cannot be created up)
 *                                 + RTM_GETLINK e<i> (its ifindex), in one sendmsg
 *   socket A:                      RTM_GETLINK c<i>
 *   per side, in one sendmsg:      RTM_NEWADDR <own>/32, RTM_NEWROUTE <peer>/32 scope link,
 *                                 RTM_NEWNEIGH <peer> lladdr <peer MAC> nud permanent
 *
 * rtnetlink handles a request inside sendmsg, so each send is complete when it returns; only the
 * replies are read afterwards. Both sockets are opened once, inside their namespaces (setns), as
 * the agent does. Nothing here can be faster and still do the same work.
 *
 * Commands on stdin, one per line; answers on stdout, one line each:
 *   c I       make pair I sequentially       -> "<microseconds>"
 *   C N       make pairs 0..N-1 as one batch (every phase for all N pairs in one sendmsg per
 *             socket): the floor of N concurrent connects -> "<us pair 0> <us pair 1> ..."
 *             (each pair's time = when its last reply was read, from the start of the batch)
 *   d I       delete pair I (RTM_DELLINK c<I> on A)   -> "ok"
 *   D N       delete pairs 0..N-1                     -> "ok"
 * Addresses: client 10.203.<I/256>.<I%256>, endpoint 10.204.<I/256>.<I%256>.
 * Errors: "error <what>: <strerror>" and exit status 1.
 *
 * Build: cc -O2 -o veth-floor veth-floor.c     Run (root): veth-floor /run/netns/C /run/netns/E
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <arpa/inet.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

#define MAXN 4096
#define BUFSZ (4 << 20)

static int nsfd[2];
static int sk[2];
static uint32_t seq = 1;
static unsigned char *sendbuf;
static size_t sendlen;
static unsigned char recvbuf[1 << 16];

static void die(const char *what, int err) {
  printf("error %s: %s\n", what, strerror(err));
  fflush(stdout);
  exit(1);
}

/* ---- message building into sendbuf ---- */

static struct nlmsghdr *msg_begin(int type, int flags) {
  struct nlmsghdr *h = (struct nlmsghdr *)(sendbuf + sendlen);
  memset(h, 0, NLMSG_HDRLEN);
  h->nlmsg_type = type;
  h->nlmsg_flags = NLM_F_REQUEST | flags;
  h->nlmsg_seq = seq++;
  h->nlmsg_len = NLMSG_HDRLEN;
  return h;
}
static void *msg_put(struct nlmsghdr *h, const void *data, size_t len) {
  void *p = (char *)h + NLMSG_ALIGN(h->nlmsg_len);
  memset(p, 0, NLMSG_ALIGN(len));
  if (data) memcpy(p, data, len);
  h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + len;
  return p;
}
static struct rtattr *attr(struct nlmsghdr *h, int type, const void *data, size_t len) {
  struct rtattr *a = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));
  a->rta_type = type;
  a->rta_len = RTA_LENGTH(len);
  if (len) memcpy(RTA_DATA(a), data, len);
  h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
  return a;
}
static struct rtattr *nest(struct nlmsghdr *h, int type) { return attr(h, type, NULL, 0); }
static void nest_end(struct nlmsghdr *h, struct rtattr *a) { a->rta_len = (char *)h + h->nlmsg_len - (char *)a; }
static void msg_end(struct nlmsghdr *h) { sendlen += NLMSG_ALIGN(h->nlmsg_len); }

static void flush(int s) {
  size_t off = 0;
  while (off < sendlen) {
    ssize_t n = send(sk[s], sendbuf + off, sendlen - off, 0);
    if (n < 0) die("sendmsg", errno);
    off += n;
  }
  sendlen = 0;
}

/* ---- replies ---- */

/* Per request seq: which pair it belongs to, and what it is (1 = GETLINK of side 0/1 -> ifindex). */
struct pending {
  int pair;
  int getlink_side; /* -1 for a plain ack */
};
static struct pending *pend; /* indexed by seq % (MAXN * 16) */
#define PMOD (MAXN * 16)
static int ifindex[2][MAXN];
static int left[MAXN];         /* replies a pair still waits for in this phase */
static double done_at[MAXN];

static void expect(uint32_t s, int pair, int getlink_side) {
  pend[s % PMOD].pair = pair;
  pend[s % PMOD].getlink_side = getlink_side;
  left[pair]++;
}

/* Reads until `count` replies have arrived on socket s. */
static void collect(int s, int count, double t0) {
  while (count > 0) {
    ssize_t n = recv(sk[s], recvbuf, sizeof recvbuf, 0);
    if (n < 0) die("recvmsg", errno);
    for (struct nlmsghdr *h = (struct nlmsghdr *)recvbuf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
      struct pending *p = &pend[h->nlmsg_seq % PMOD];
      if (h->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *e = NLMSG_DATA(h);
        if (e->error) die("rtnetlink request", -e->error);
      } else if (h->nlmsg_type == RTM_NEWLINK && p->getlink_side >= 0) {
        struct ifinfomsg *ifi = NLMSG_DATA(h);
        ifindex[p->getlink_side][p->pair] = ifi->ifi_index;
      } else {
        continue;
      }
      count--;
      if (--left[p->pair] == 0 && t0 > 0) done_at[p->pair] = now_us() - t0;
    }
  }
}

/* ---- the work ---- */

static void mac(unsigned char *m, int i, int side) {
  m[0] = 0x02;
  m[1] = side ? 0xbb : 0xaa;
  m[2] = 0xf1;
  m[3] = (i >> 16) & 255;
  m[4] = (i >> 8) & 255;
  m[5] = i & 255;
}
static void addr(struct in_addr *a, int i, int side) {
  char s[32];
  snprintf(s, sizeof s, "10.%d.%d.%d", side ? 204 : 203, (i >> 8) & 255, i & 255);
  inet_pton(AF_INET, s, a);
}
static void name(char *n, int i, int side) { snprintf(n, IFNAMSIZ, "%c%d", side ? 'e' : 'c', i); }

static void newlink(int i) {
  char na[IFNAMSIZ], nb[IFNAMSIZ];
  unsigned char ma[6], mb[6];
  name(na, i, 0);
  name(nb, i, 1);
  mac(ma, i, 0);
  mac(mb, i, 1);
  struct nlmsghdr *h = msg_begin(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
  struct ifinfomsg *ifi = msg_put(h, NULL, sizeof *ifi);
  ifi->ifi_flags = IFF_UP;
  ifi->ifi_change = IFF_UP;
  attr(h, IFLA_IFNAME, na, strlen(na) + 1);
  attr(h, IFLA_ADDRESS, ma, 6);
  uint32_t fd = nsfd[0];
  attr(h, IFLA_NET_NS_FD, &fd, 4);
  struct rtattr *li = nest(h, IFLA_LINKINFO);
  attr(h, IFLA_INFO_KIND, "veth", 5);
  struct rtattr *data = nest(h, IFLA_INFO_DATA);
  struct rtattr *peer = nest(h, VETH_INFO_PEER);
  struct ifinfomsg *pi = msg_put(h, NULL, sizeof *pi);
  (void)pi;
  attr(h, IFLA_IFNAME, nb, strlen(nb) + 1);
  attr(h, IFLA_ADDRESS, mb, 6);
  fd = nsfd[1];
  attr(h, IFLA_NET_NS_FD, &fd, 4);
  nest_end(h, peer);
  nest_end(h, data);
  nest_end(h, li);
  msg_end(h);
  expect(h->nlmsg_seq, i, -1);
}

static void setup_peer(int i) { /* on socket B */
  char nb[IFNAMSIZ];
  name(nb, i, 1);
  struct nlmsghdr *h = msg_begin(RTM_SETLINK, NLM_F_ACK);
  struct ifinfomsg *ifi = msg_put(h, NULL, sizeof *ifi);
  ifi->ifi_flags = IFF_UP;
  ifi->ifi_change = IFF_UP;
  attr(h, IFLA_IFNAME, nb, strlen(nb) + 1);
  msg_end(h);
  expect(h->nlmsg_seq, i, -1);
}

static void getlink(int i, int side) {
  char n[IFNAMSIZ];
  name(n, i, side);
  struct nlmsghdr *h = msg_begin(RTM_GETLINK, 0);
  msg_put(h, NULL, sizeof(struct ifinfomsg));
  attr(h, IFLA_IFNAME, n, strlen(n) + 1);
  uint32_t mask = RTEXT_FILTER_SKIP_STATS;
  attr(h, IFLA_EXT_MASK, &mask, 4);
  msg_end(h);
  expect(h->nlmsg_seq, i, side);
}

static void configure(int i, int side) {
  int idx = ifindex[side][i];
  struct in_addr own, peer;
  addr(&own, i, side);
  addr(&peer, i, !side);
  unsigned char pm[6];
  mac(pm, i, !side);

  struct nlmsghdr *h = msg_begin(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
  struct ifaddrmsg *ifa = msg_put(h, NULL, sizeof *ifa);
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = 32;
  ifa->ifa_index = idx;
  attr(h, IFA_LOCAL, &own, 4);
  attr(h, IFA_ADDRESS, &own, 4);
  msg_end(h);
  expect(h->nlmsg_seq, i, -1);

  h = msg_begin(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
  struct rtmsg *rtm = msg_put(h, NULL, sizeof *rtm);
  rtm->rtm_family = AF_INET;
  rtm->rtm_dst_len = 32;
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_STATIC;
  rtm->rtm_scope = RT_SCOPE_LINK;
  rtm->rtm_type = RTN_UNICAST;
  attr(h, RTA_DST, &peer, 4);
  uint32_t oif = idx;
  attr(h, RTA_OIF, &oif, 4);
  msg_end(h);
  expect(h->nlmsg_seq, i, -1);

  h = msg_begin(RTM_NEWNEIGH, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
  struct ndmsg *nd = msg_put(h, NULL, sizeof *nd);
  nd->ndm_family = AF_INET;
  nd->ndm_ifindex = idx;
  nd->ndm_state = NUD_PERMANENT;
  attr(h, NDA_DST, &peer, 4);
  attr(h, NDA_LLADDR, pm, 6);
  msg_end(h);
  expect(h->nlmsg_seq, i, -1);
}

static void dellink(int i) {
  char n[IFNAMSIZ];
  name(n, i, 0);
  struct nlmsghdr *h = msg_begin(RTM_DELLINK, NLM_F_ACK);
  msg_put(h, NULL, sizeof(struct ifinfomsg));
  attr(h, IFLA_IFNAME, n, strlen(n) + 1);
  msg_end(h);
  expect(h->nlmsg_seq, i, -1);
}

/* Pairs from..from+n-1, every phase batched: n = 1 is the sequential connect. */
static void make(int from, int n, double t0) {
  for (int i = from; i < from + n; i++) left[i] = 0;
  for (int i = from; i < from + n; i++) newlink(i);
  flush(0);
  for (int i = from; i < from + n; i++) setup_peer(i), getlink(i, 1);
  flush(1);
  for (int i = from; i < from + n; i++) getlink(i, 0);
  flush(0);
  collect(0, 2 * n, 0);
  collect(1, 2 * n, 0);
  for (int i = from; i < from + n; i++) configure(i, 0);
  flush(0);
  for (int i = from; i < from + n; i++) configure(i, 1);
  flush(1);
  collect(0, 3 * n, t0);
  collect(1, 3 * n, t0);
}

static void drop(int from, int n) {
  for (int i = from; i < from + n; i++) left[i] = 0, dellink(i);
  flush(0);
  collect(0, n, 0);
}

static int open_in(int fd) {
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) die("open own netns", errno);
  if (setns(fd, CLONE_NEWNET) < 0) die("setns", errno);
  int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (s < 0) die("socket", errno);
  int sz = 32 << 20;
  setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz);
  setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz);
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind", errno);
  int one = 1;
  setsockopt(s, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(s, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one); /* acks without the request echoed */
  if (setns(self, CLONE_NEWNET) < 0) die("setns back", errno);
  close(self);
  return s;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s /run/netns/CLIENT /run/netns/ENDPOINT\n", argv[0]);
    return 2;
  }
  for (int s = 0; s < 2; s++) {
    nsfd[s] = open(argv[1 + s], O_RDONLY | O_CLOEXEC);
    if (nsfd[s] < 0) die(argv[1 + s], errno);
    sk[s] = open_in(nsfd[s]);
  }
  sendbuf = malloc(BUFSZ);
  pend = calloc(PMOD, sizeof *pend);
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    char cmd;
    int n;
    if (sscanf(line, " %c %d", &cmd, &n) != 2 || n < 0 || n >= MAXN) {
      printf("error bad command\n");
      fflush(stdout);
      continue;
    }
    if (cmd == 'c') {
      double t0 = now_us();
      make(n, 1, t0);
      printf("%.1f\n", done_at[n]);
    } else if (cmd == 'C') {
      double t0 = now_us();
      make(0, n, t0);
      for (int i = 0; i < n; i++) printf(i ? " %.1f" : "%.1f", done_at[i]);
      printf("\n");
    } else if (cmd == 'd') {
      drop(n, 1);
      printf("ok\n");
    } else if (cmd == 'D') {
      drop(0, n);
      printf("ok\n");
    } else {
      printf("error bad command\n");
    }
    fflush(stdout);
  }
  return 0;
}
