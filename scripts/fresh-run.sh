#!/usr/bin/env bash
# fresh-run.sh CMD [ARGS...]: runs CMD as on a host just booted, with an empty /run and /tmp.
# A private mount namespace (unshare -m, no propagation back to the host) gets a new tmpfs on
# /run and on /tmp; the rest of the file system is the host's. Needs root. CI runs the test
# command this way so that nothing a previous run left under /run or /tmp can hide a missing
# mkdir or setting; the same works by hand: `sudo scripts/fresh-run.sh ./bin/nsm-agent demo`.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
exec unshare --mount --propagation private -- bash -c '
  set -e
  mount -t tmpfs -o mode=0755,nosuid,nodev fresh-run /run
  mount -t tmpfs -o mode=1777,nosuid,nodev fresh-tmp /tmp
  # /run/lock and /run/shm are what Debian expects to exist under /run (tmpfiles.d, legacy.conf).
  mkdir -p -m 1777 /run/lock
  ln -s /dev/shm /run/shm
  exec "$@"
' fresh-run "$@"
