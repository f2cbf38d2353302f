export { connectServer, DOWNSTREAM } from './server';
export type { ConnectOptions, DownstreamSlot } from './server';
