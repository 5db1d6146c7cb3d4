/**
 * `lifeguard/dashboard`: a live web page of every pool of the process (connections by state, waiters,
 * wait-time percentiles), its sockets by TCP state and remote, open leak reports with their stacks,
 * active alerts, and `/metrics`. Charts are drawn with uPlot. See docs/dashboard.md.
 */
export { startDashboard, type StartDashboardOptions, type Dashboard } from './server.js';
export { dashboardHandler, mountDashboard, type DashboardOptions, type DashboardHandlerOptions, type DashboardHandler, type MountedDashboard } from './handler.js';
export type { DashboardState, DashboardPool, DashboardLeak, DashboardSockets, PoolSeries } from './sampler.js';
export { runDashboardCommand, DASHBOARD_HELP, type DashboardCommandIO } from './cli.js';
