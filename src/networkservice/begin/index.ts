export { beginServer, beginServer as newServer } from './server';
export { beginClient, beginClient as newClient } from './client';
export { eventFactory, eventFactoryOf, eventFactorySide, withEventFactory, type EventFactory, type EventOptions, type Side } from './context';
export { mergeConnection } from './merge';
export { type BeginOptions, DEFAULT_CLOSE_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS } from './core';
