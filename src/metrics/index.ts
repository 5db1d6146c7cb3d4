/**
 * `lifeguard/metrics`: what every pool publishes on `node:diagnostics_channel`, collected; exported to
 * OpenTelemetry and Prometheus; watched by alerts. See docs/metrics.md.
 */
export { MetricsCollector, type MetricsCollectorOptions, type PoolSnapshot, type LeakRecord, type Observation, type CollectorEvents } from './collector.js';
export { registerPrometheus, type PrometheusOptions, type PrometheusMetrics } from './prometheus.js';
export { registerOpenTelemetry, type OpenTelemetryOptions, type OpenTelemetryMetrics } from './opentelemetry.js';
export { AlertMonitor, AlertCodes, type Alert, type ClearedAlert, type AlertCode, type AlertSeverity, type AlertEvents, type AlertMonitorOptions } from './alerts.js';
export { DEFAULT_BUCKETS, POOL_NAME_ATTRIBUTE, STATE_ATTRIBUTE } from './figures.js';
export { serverSamples, serverCloseWait, SERVER_FIGURES, SERVER_ATTRIBUTES, type ServerSample, type ServerFigure, type ServerLabel } from './server.js';
export type { Percentiles } from './window.js';
export { CHANNELS, type ChannelMessages, type ChannelName } from '../pool/diagnostics.js';
