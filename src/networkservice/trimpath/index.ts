export { trimPathServer, trimPathServer as newServer, trimPath } from './server';
export { trimPathClient, trimPathClient as newClient } from './client';
export { markNextHop, withNextHopFlag, type NextHopFlag } from './context';
