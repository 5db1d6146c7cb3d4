/**
 * `lifeguard/server`: the server side. Guards a net, http, https or http2 server against sockets left in
 * CLOSE_WAIT or idle forever, checks keep-alive alignment, and shuts it down gracefully. See docs/server.md.
 */
export { guardServer, ServerGuard, type ServerGuardEvents } from './guard.js';
export { servers } from './registry.js';
export { serverSamples, serverCloseWait, SERVER_FIGURES, type ServerSample, type ServerFigure, type ServerLabel } from '../metrics/server.js';
export { ServerCodes, ServerGuardError, type ServerCode } from './errors.js';
export type { ServerGuardOptions, KeepAliveHint } from './options.js';
export type { ConnectionInfo, ConnectionKind, ConnectionState, ReapReport, ServerGuardStats, ServerWarning, ShutdownOptions, ShutdownReport } from './types.js';
export { InvalidOptionError } from '../pool/errors.js';
