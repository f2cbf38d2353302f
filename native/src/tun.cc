// SPDX-License-Identifier: Apache-2.0
// TUN/TAP device creation. The device is created in the calling thread's
// network namespace, so wrap the call in withNetns to create it elsewhere.
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "errors.h"
#include "nsm_native.h"

namespace nsm {

// openTun(name, {tap?, multiQueue?, nonBlocking?}) -> {fd, name}
// Always IFF_NO_PI (packets without the 4-byte protocol header). `name` may be
// empty or a pattern like "tun%d"; the kernel's chosen name is returned. The
// fd is close-on-exec and owned by the caller.
Napi::Value OpenTun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) return ThrowArgType(env, "openTun: name must be a string");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  if (name.size() >= IFNAMSIZ) {
    return ThrowErrno(env, EINVAL, "ioctl(TUNSETIFF)", name);
  }
  bool tap = false, multi_queue = false, non_blocking = false;
  if (info[1].IsObject()) {
    Napi::Object opts = info[1].As<Napi::Object>();
    tap = opts.Get("tap").ToBoolean();
    multi_queue = opts.Get("multiQueue").ToBoolean();
    non_blocking = opts.Get("nonBlocking").ToBoolean();
  }

  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | (non_blocking ? O_NONBLOCK : 0));
  if (fd < 0) return ThrowErrno(env, errno, "open", "/dev/net/tun");

  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = static_cast<short>((tap ? IFF_TAP : IFF_TUN) | IFF_NO_PI |
                                     (multi_queue ? IFF_MULTI_QUEUE : 0));
  memcpy(ifr.ifr_name, name.data(), name.size());
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, err, "ioctl(TUNSETIFF)", name);
  }

  Napi::Object result = Napi::Object::New(env);
  result.Set("fd", Napi::Number::New(env, fd));
  result.Set("name", Napi::String::New(env, ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ)));
  return result;
}

}  // namespace nsm
