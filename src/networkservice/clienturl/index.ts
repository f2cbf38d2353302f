export { clientURL, withClientURL, parseClientURL } from './context';
export { clientURLServer, clientURLClient, clientURLServer as newServer, clientURLClient as newClient } from './element';
