export { LifeguardDispatcher, withScope, type HttpDispatcherEvents } from './dispatcher.js';
export { LifeguardAgent } from './agent.js';
export type { BodyLeakReport, HttpCounters, HttpStats } from './core.js';
export type { HttpConnection } from './connection.js';
export type { HttpPoolOptions, RetryOptions } from './options.js';
export * from './errors.js';
