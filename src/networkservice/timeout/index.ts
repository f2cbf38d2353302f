export { timeoutServer, timeoutServer as newServer } from './server';
