export { MonitorHub, type MonitorEventType } from './hub';
export { monitorServer, monitorServer as newServer } from './server';
export { matchesSelector } from './selector';
export {
  monitorDownstreamClient,
  monitorDownstreamClient as newDownstreamClient,
  watchConnection,
  ownSelector,
  statesFor,
  eventType,
  streamCtx,
  type MonitorDownstreamOptions,
  type ConnectionWatch,
  type WatchHandlers,
  type OpenMonitor,
  type ConnectionState,
} from './downstream';
