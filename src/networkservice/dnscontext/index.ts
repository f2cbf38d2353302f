export { dnsContextServer, dnsContextServer as newServer, sameDnsConfig } from './server';
