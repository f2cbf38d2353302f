export { roundRobinServer, roundRobinServer as newServer } from './server';
