export { authorizeServer, authorizeServer as newServer, type AuthorizeServerOptions } from './server';
export { authorizeClient, authorizeClient as newClient, type AuthorizeClientOptions } from './client';
export { ServicePolicy, type ServicePolicyEntry } from './policy';
export {
  evaluate,
  subjectOf,
  tokensValid,
  tokensExpired,
  tokensChained,
  prevTokenSigned,
  nextTokenSigned,
  COMMON_POLICIES,
  SERVER_POLICIES,
  CLIENT_POLICIES,
  type Policy,
  type PolicyInput,
} from './policies';
