export { relayingServer, relayServer, type RelayingServerOptions, type RelayServerOptions, type RelayIdentity } from './server';
export { RelayTable } from './table';
