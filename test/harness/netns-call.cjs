// One NSM NetworkService (or, with service 'nse', registry NSE) call from inside a network namespace (run it with
// `ip netns exec NS node netns-call.cjs JSON`): tests use it to act as a raw peer of an agent
// that listens on a host namespace's underlay address. With `identity` ({cert, key, bundle}
// files), the call is mutual TLS with an ES256 NSM token, as an agent would make it
// (`autoTokens: false`: no token but what `metadata` carries).
// Prints {code, details, response}.
'use strict';
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const dist = path.resolve(__dirname, '../../dist');
const { api } = require(`${dist}/api`);

async function main() {
  const { target, method, request, metadata = {}, timeoutMs = 10000, identity, autoTokens = true, service } = JSON.parse(process.argv[2]);
  let creds = grpc.credentials.createInsecure();
  let source;
  if (identity) {
    const spire = require(`${dist}/spire`);
    source = spire.createX509Source({ source: 'files', files: identity }, { name: 'raw-peer' });
    await spire.waitForIdentity(source, 5000);
    creds = spire.channelCredentials(source, autoTokens ? { tokens: new spire.SpiffeTokenSource(source, 600_000) } : {}).credentials;
  }
  const Ctor = service === 'nse' ? api().reg.registry.NetworkServiceEndpointRegistry : api().ns.networkservice.NetworkService;
  const client = new Ctor(target, creds);
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  client[method](request, md, { deadline: Date.now() + timeoutMs }, (err, res) => {
    process.stdout.write(JSON.stringify(err ? { code: err.code, details: err.details } : { code: 0, response: res }));
    grpc.Client.prototype.close.call(client);
    source?.close();
  });
}
main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err));
  process.exit(1);
});
