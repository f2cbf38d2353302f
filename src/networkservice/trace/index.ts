export { traceServer, tracedServer, tracedClient, type Span, type Tracer } from './server';
