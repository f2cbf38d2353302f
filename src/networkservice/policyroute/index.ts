export { policyRouteServer, type PolicyRouteSettings } from './server';
