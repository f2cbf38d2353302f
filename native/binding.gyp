# Build description for the nsm-agent native addon (Linux only).
# Built by `npm run build:native` (node-gyp rebuild --directory native);
# output: native/build/Release/nsm_native.node, loaded only by src/sys/native.ts.
{
  "targets": [
    {
      "target_name": "nsm_native",
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api"
      ],
      "defines": ["NAPI_VERSION=8"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
      "conditions": [
        ["OS=='linux'", {
          "sources": [
            "src/addon.cc",
            "src/errors.cc",
            "src/netns.cc",
            "src/tun.cc",
            "src/notify.cc",
            "src/peercred.cc",
            "src/unixcall.cc",
            "src/icmp.cc",
            "src/nssocket.cc",
            "src/rtnl.cc",
            "src/files.cc",
            "src/memory.cc"
          ]
        }, {
          "sources": ["src/unsupported.cc"]
        }]
      ]
    }
  ]
}
