export { mechanismTranslationClient, mechanismTranslationClient as newClient } from './client';
