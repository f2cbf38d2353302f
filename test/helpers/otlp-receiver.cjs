// A small OTLP/gRPC trace receiver for tests: serves opentelemetry's TraceService/Export on the
// address given as argv[2] (host:port) and prints each span it receives as one JSON line on
// stdout: {service, traceId, spanId, parentSpanId, name}. Prints "listening" once bound.
// Run it with `ip netns exec NS node otlp-receiver.cjs HOST:PORT` to serve inside a namespace.
'use strict';
const grpc = require('@grpc/grpc-js');
const protobuf = require('protobufjs');

// The part of opentelemetry-proto's trace messages the tests read (field numbers as upstream).
const PROTO = `
syntax = "proto3";
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
message Resource { repeated KeyValue attributes = 1; }
message ScopeSpans { repeated Span spans = 2; }
message Span {
  bytes trace_id = 1;
  bytes span_id = 2;
  bytes parent_span_id = 4;
  string name = 5;
  repeated KeyValue attributes = 9;
}
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; }
`;
const root = protobuf.parse(PROTO, { keepCase: true }).root;
const Request = root.lookupType('ExportTraceServiceRequest');

const hex = (b) => Buffer.from(b ?? []).toString('hex');
const attrs = (list) => Object.fromEntries((list ?? []).map((kv) => [kv.key, kv.value?.string_value ?? '']));

const service = {
  Export: {
    path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
    requestStream: false,
    responseStream: false,
    requestSerialize: (m) => m,
    requestDeserialize: (buf) => Request.toObject(Request.decode(buf), { bytes: Buffer }),
    responseSerialize: () => Buffer.alloc(0), // ExportTraceServiceResponse with no fields
    responseDeserialize: () => ({}),
  },
};

const server = new grpc.Server();
server.addService(service, {
  Export(call, cb) {
    for (const rs of call.request.resource_spans ?? []) {
      const svc = attrs(rs.resource?.attributes)['service.name'] ?? '';
      for (const ss of rs.scope_spans ?? []) {
        for (const s of ss.spans ?? []) {
          process.stdout.write(
            JSON.stringify({ service: svc, traceId: hex(s.trace_id), spanId: hex(s.span_id), parentSpanId: hex(s.parent_span_id), name: s.name, attributes: attrs(s.attributes) }) + '\n',
          );
        }
      }
    }
    cb(null, {});
  },
});
server.bindAsync(process.argv[2], grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write('listening\n');
});
process.on('SIGTERM', () => server.forceShutdown());
