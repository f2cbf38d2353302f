export { parseNsURL, parseNsURL as parseNSURL, mechanismOf, checkInterfaceName, type NsURL } from './nsurl';
