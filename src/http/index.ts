export { LifeguardDispatcher, withScope, type HttpDispatcherEvents } from './dispatcher.js';
export { LifeguardAgent, LifeguardHttpsAgent, createAgent, createHttpsAgent, type NodeAgentOptions } from './agent.js';
export type { BodyLeakReport, HttpCounters, HttpStats } from './core.js';
export type { HttpConnection } from './connection.js';
export type { HttpBudgetOption, HttpPoolOptions, RetryOptions } from './options.js';
export * from './errors.js';
