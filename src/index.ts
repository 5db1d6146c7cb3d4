export * from './pool/index.js';
export { systemClock, type Clock, type TimerHandle } from './internal/clock.js';
export { AcquireSite } from './leak/site.js';
