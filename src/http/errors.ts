import { LifeguardError } from '../pool/errors.js';

/**
 * Errors of `lifeguard/http`. Like every Lifeguard error they carry a stable `code` that never changes
 * meaning; messages say what failed, why, and the state of the pool or request at that moment.
 */
export const HttpErrorCodes = Object.freeze({
  /** The dispatcher (or agent, or scope) was closed or destroyed before or while the request ran. */
  CLOSED: 'LG_HTTP_CLOSED',
  /** No connection became free within `acquireTimeoutMs` (or the retry deadline); names who holds them. */
  QUEUE_TIMEOUT: 'LG_HTTP_QUEUE_TIMEOUT',
  /** The per-origin queue was at `maxWaiting`: rejected at once instead of queueing. */
  QUEUE_FULL: 'LG_HTTP_QUEUE_FULL',
  /** Diagnostic (a `leak` event, not an error): a response body stayed unconsumed past `bodyLeakWarnAfterMs`. */
  BODY_LEAK: 'LG_HTTP_BODY_LEAK',
  /** A response body stayed unconsumed past `bodyAbandonAfterMs`: it was cancelled and its connection destroyed. */
  BODY_ABANDONED: 'LG_HTTP_BODY_ABANDONED',
  /** The request's `origin` is missing or not an http(s) URL. */
  INVALID_ORIGIN: 'LG_HTTP_INVALID_ORIGIN',
  /**
   * The request's deadline (`retry.deadlineMs`) passed while it was not waiting in a queue: while draining
   * the body of a retryable response before retrying it, or with the retry's delay reaching past it.
   */
  DEADLINE: 'LG_HTTP_DEADLINE',
  /** An undici Client tried to open a second TCP connection for a pooled connection (internal: retried). */
  CONNECTION_GONE: 'LG_HTTP_CONNECTION_GONE',
} as const);

export type HttpErrorCode = (typeof HttpErrorCodes)[keyof typeof HttpErrorCodes];

export class HttpError extends LifeguardError<HttpErrorCode> {}

/** The dispatcher, agent or scope is closed: nothing new is sent. `cause` is the destroy reason, if any. */
export class HttpClosedError extends HttpError {
  constructor(message: string, options?: ErrorOptions) {
    super(HttpErrorCodes.CLOSED, message, options);
  }
}

/** Waiting for a connection took longer than allowed. `cause` is the pool's `LG_ACQUIRE_TIMEOUT` error. */
export class QueueTimeoutError extends HttpError {
  constructor(message: string, options?: ErrorOptions) {
    super(HttpErrorCodes.QUEUE_TIMEOUT, message, options);
  }
}

/** The origin's queue was full (`maxWaiting`). `cause` is the pool's `LG_QUEUE_FULL` error. */
export class QueueFullError extends HttpError {
  constructor(message: string, options?: ErrorOptions) {
    super(HttpErrorCodes.QUEUE_FULL, message, options);
  }
}

/** A response body left unconsumed past `bodyAbandonAfterMs` was cancelled; its connection was destroyed. */
export class BodyAbandonedError extends HttpError {
  constructor(message: string) {
    super(HttpErrorCodes.BODY_ABANDONED, message);
  }
}

/** The request had no usable origin. */
export class InvalidOriginError extends HttpError {
  constructor(message: string) {
    super(HttpErrorCodes.INVALID_ORIGIN, message);
  }
}

/** A pooled connection's socket is gone: its Client may not reconnect behind the pool's back. */
export class ConnectionGoneError extends HttpError {
  constructor(message: string) {
    super(HttpErrorCodes.CONNECTION_GONE, message);
  }
}

/** The request's deadline passed outside a queue (draining a retryable response, or before its retry). */
export class RequestDeadlineError extends HttpError {
  constructor(message: string, options?: ErrorOptions) {
    super(HttpErrorCodes.DEADLINE, message, options);
  }
}
