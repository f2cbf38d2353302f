// SPDX-License-Identifier: Apache-2.0
// Network-namespace primitives.
//
// setns(2) changes the namespace of the *calling thread* only. The rules here:
//  * withNetns switches the calling (JS) thread, runs a JS callback
//    synchronously and switches back before returning or throwing. If the
//    switch back fails the process aborts: a JS thread silently left in a
//    foreign namespace would run every later socket()/open("/proc/sys/net")
//    there.
//  * createNetns never switches the JS thread: unshare(2) runs on a
//    short-lived dedicated pthread whose namespace is pinned by a bind mount.
//  * libuv pool threads are never touched.
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <string>

#include "errors.h"
#include "nsm_native.h"

namespace nsm {
namespace {

// The namespace the process was in when the addon was first loaded (the
// agent's "home" ns). Opened once, never closed; outermost withNetns calls
// always return here.
int g_home_fd = -1;

// Nesting depth of withNetns on this thread (threads switch independently).
thread_local int t_depth = 0;

bool GetFd(const Napi::Value& v, int* out) {
  if (!v.IsNumber()) return false;
  double d = v.As<Napi::Number>().DoubleValue();
  if (d < 0 || d > 2147483647.0 || d != static_cast<double>(static_cast<int>(d))) return false;
  *out = static_cast<int>(d);
  return true;
}

bool GetAbsolutePath(const Napi::Value& v, std::string* out) {
  if (!v.IsString()) return false;
  *out = v.As<Napi::String>().Utf8Value();
  return out->size() > 1 && (*out)[0] == '/' && out->find('\0') == std::string::npos;
}

// Makes `dir` exist and be a shared mount point, the way `ip netns add` does
// for /run/netns, so namespaces bind-mounted below it propagate to other mount
// namespaces (e.g. containers that bind /run/netns). Returns 0 or an errno and
// sets *syscall.
int PrepareRunDir(const std::string& dir, const char** syscall) {
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    *syscall = "mkdir";
    return errno;
  }
  for (int attempt = 0;; attempt++) {
    if (mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) == 0) return 0;
    // EINVAL: not a mount point yet. Bind it onto itself once, then retry.
    if (errno != EINVAL || attempt > 0) {
      *syscall = "mount";
      return errno;
    }
    if (mount(dir.c_str(), dir.c_str(), "none", MS_BIND | MS_REC, nullptr) != 0) {
      *syscall = "mount";
      return errno;
    }
  }
}

struct UnshareJob {
  const char* path;
  int err;
  const char* syscall;
};

// Runs on the dedicated pthread: new empty netns for this thread only, pinned
// by bind-mounting the thread's ns file onto the target path. The thread then
// exits; the mount keeps the namespace alive.
void* UnshareAndPin(void* arg) {
  auto* job = static_cast<UnshareJob*>(arg);
  if (unshare(CLONE_NEWNET) != 0) {
    job->err = errno;
    job->syscall = "unshare";
  } else if (mount("/proc/thread-self/ns/net", job->path, "none", MS_BIND, nullptr) != 0) {
    job->err = errno;
    job->syscall = "mount";
  }
  return nullptr;
}

}  // namespace

bool InitNetns(Napi::Env env) {
  if (g_home_fd >= 0) return true;  // another env (worker) already opened it
  int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    ErrnoError(env, errno, "open", "/proc/thread-self/ns/net").ThrowAsJavaScriptException();
    return false;
  }
  g_home_fd = fd;
  return true;
}

int HomeNetnsFd() { return g_home_fd; }

int InNetns(int target, const std::function<void()>& fn, const char** syscall) {
  int back = g_home_fd;
  bool own_back = false;
  if (t_depth > 0) {
    back = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (back < 0) {
      *syscall = "open";
      return errno;
    }
    own_back = true;
  }
  if (setns(target, CLONE_NEWNET) != 0) {
    int err = errno;
    if (own_back) close(back);
    *syscall = "setns";
    return err;
  }
  fn();
  if (setns(back, CLONE_NEWNET) != 0) {
    Napi::Error::Fatal("nsm_native", "cannot restore the thread's network namespace; aborting");
  }
  if (own_back) close(back);
  return 0;
}

// withNetns(fd, fn): setns(fd) on this thread, return fn(), setns back.
// Nested calls are allowed: an inner call returns to the namespace the outer
// call switched to (captured by opening /proc/thread-self/ns/net, so it does
// not depend on the outer fd staying open while fn runs).
Napi::Value WithNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int target = -1;
  if (!GetFd(info[0], &target)) return ThrowArgType(env, "withNetns: fd must be a non-negative integer");
  if (!info[1].IsFunction()) return ThrowArgType(env, "withNetns: fn must be a function");
  Napi::Function fn = info[1].As<Napi::Function>();

  Napi::Value result;
  const char* syscall = nullptr;
  int err = InNetns(
      target,
      [&] {
        t_depth++;
        result = fn.Call(env.Undefined(), {});  // empty if fn threw
        t_depth--;
      },
      &syscall);
  if (err != 0) return ThrowErrno(env, err, syscall);
  return result;  // a pending exception from fn propagates unchanged
}

// createNetns(path): like `ip netns add`, but for an arbitrary absolute path
// whose parent directory is prepared as a shared mount. EEXIST if path exists.
Napi::Value CreateNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!GetAbsolutePath(info[0], &path)) return ThrowArgType(env, "createNetns: path must be an absolute path");
  std::string dir = path.substr(0, path.rfind('/'));
  if (dir.empty()) dir = "/";

  const char* syscall = nullptr;
  if (int err = PrepareRunDir(dir, &syscall)) return ThrowErrno(env, err, syscall, dir);

  int fd = open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(env, errno, "open", path);
  close(fd);

  UnshareJob job{path.c_str(), 0, nullptr};
  // The helper thread inherits our signal mask; block everything so no
  // process-directed signal is delivered to it during its short life.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t thread;
  int err = pthread_create(&thread, nullptr, UnshareAndPin, &job);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (err != 0) {
    job.err = err;
    job.syscall = "pthread_create";
  } else {
    pthread_join(thread, nullptr);
  }

  if (job.err != 0) {
    unlink(path.c_str());
    return ThrowErrno(env, job.err, job.syscall, path);
  }
  return env.Undefined();
}

// deleteNetns(path): detach the bind mount and remove the file, like
// `ip netns del`. The namespace itself lives on while anything (fds, sockets,
// processes) still references it.
Napi::Value DeleteNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!GetAbsolutePath(info[0], &path)) return ThrowArgType(env, "deleteNetns: path must be an absolute path");
  // EINVAL = not a mount point (e.g. a leftover empty file): still unlink it.
  if (umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL) {
    return ThrowErrno(env, errno, "umount2", path);
  }
  if (unlink(path.c_str()) != 0) return ThrowErrno(env, errno, "unlink", path);
  return env.Undefined();
}

}  // namespace nsm
