export { netsvcmonitorServer } from './server';
