/**
 * @grpc/grpc-js, required on the first use of one of its members. An agent nobody has talked to
 * yet (no TCP listener, no remote registry, no peer) never loads it, nor node:http2 and node:tls
 * behind it: modules that need grpc-js values use `grpcJs.X`, and `import type * as grpc` for
 * its types. (As core/lazy's lazyModule, which src/api, below core, cannot import.)
 */
import type * as GrpcJs from '@grpc/grpc-js';

let loaded: typeof GrpcJs | undefined;
const load = (): typeof GrpcJs => (loaded ??= require('@grpc/grpc-js') as typeof GrpcJs);

export const grpcJs: typeof GrpcJs = new Proxy({} as typeof GrpcJs, {
  get: (_t, key) => Reflect.get(load(), key),
  has: (_t, key) => Reflect.has(load(), key),
});
