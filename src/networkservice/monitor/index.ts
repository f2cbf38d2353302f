export { MonitorHub, type MonitorEventType } from './hub';
export { monitorServer, monitorServer as newServer } from './server';
export { matchesSelector } from './selector';
