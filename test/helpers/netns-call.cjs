// One NSM NetworkService call from inside a network namespace (run it with
// `ip netns exec NS node netns-call.cjs JSON`): tests use it to act as a raw peer of an agent
// that listens on a host namespace's underlay address. Prints {code, details, response}.
'use strict';
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const { api } = require(path.resolve(__dirname, '../../dist/api'));

const { target, method, request, metadata = {}, timeoutMs = 10000 } = JSON.parse(process.argv[2]);
const Ctor = api().ns.networkservice.NetworkService;
const client = new Ctor(target, grpc.credentials.createInsecure());
const md = new grpc.Metadata();
for (const [k, v] of Object.entries(metadata)) md.set(k, v);
client[method](request, md, { deadline: Date.now() + timeoutMs }, (err, res) => {
  process.stdout.write(JSON.stringify(err ? { code: err.code, details: err.details } : { code: 0, response: res }));
  grpc.Client.prototype.close.call(client);
});
