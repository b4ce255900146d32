// @chatd/client: the JavaScript SDK of chatd. See ../README.md.
export { ChatdClient, ChatdError } from './client.js';
export { PasswordAuth } from './auth.js';
export { memoryStorage, localStorageAdapter, indexedDBStorage } from './storage.js';
