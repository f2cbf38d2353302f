export { clientInfoServer, clientInfoServer as newServer, type ClientInfo } from './server';
