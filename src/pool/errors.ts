/**
 * Every error Lifeguard throws is a {@link LifeguardError} with a stable `code`. Codes never change
 * meaning; messages say what failed, why, and the pool's state at that moment.
 */
export const ErrorCodes = Object.freeze({
  ACQUIRE_TIMEOUT: 'LG_ACQUIRE_TIMEOUT',
  QUEUE_FULL: 'LG_QUEUE_FULL',
  POOL_CLOSED: 'LG_POOL_CLOSED',
  ACQUIRE_ABORTED: 'LG_ACQUIRE_ABORTED',
  INVALID_OPTION: 'LG_INVALID_OPTION',
  DOUBLE_RELEASE: 'LG_DOUBLE_RELEASE',
  FOREIGN_LEASE: 'LG_FOREIGN_LEASE',
  LEASE_RELEASED: 'LG_LEASE_RELEASED',
  LEASE_REVOKED: 'LG_LEASE_REVOKED',
  CREATE_TIMEOUT: 'LG_CREATE_TIMEOUT',
  CREATE_UNWANTED: 'LG_CREATE_UNWANTED',
  VALIDATION_TIMEOUT: 'LG_VALIDATION_TIMEOUT',
  DESTROY_TIMEOUT: 'LG_DESTROY_TIMEOUT',
} as const);

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/**
 * Base of every Lifeguard error. Each part (pool, HTTP, budget, doctor) has its own code set, so `C`
 * narrows `code` to the codes a subclass can carry while `instanceof LifeguardError` covers them all.
 */
export class LifeguardError<C extends string = ErrorCode> extends Error {
  readonly code: C;

  constructor(code: C, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }

  override get name(): string {
    return this.constructor.name;
  }
}

/** The acquire deadline passed. `cause` is the last creation error when creation was failing. */
export class AcquireTimeoutError extends LifeguardError {
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCodes.ACQUIRE_TIMEOUT, message, options);
  }
}

/** The wait queue was at `maxWaiting`: rejected at once instead of queueing. */
export class QueueFullError extends LifeguardError {
  constructor(message: string) {
    super(ErrorCodes.QUEUE_FULL, message);
  }
}

/** The pool is closing or closed (or was destroyed; then `cause` is the destroy reason). */
export class PoolClosedError extends LifeguardError {
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCodes.POOL_CLOSED, message, options);
  }
}

/** The caller's `AbortSignal` fired while waiting. `cause` is the signal's reason. */
export class AcquireAbortedError extends LifeguardError {
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCodes.ACQUIRE_ABORTED, message, options);
  }
}

/** An option was unknown, of the wrong type, out of range, or impossible together with another. */
export class InvalidOptionError extends LifeguardError {
  readonly option: string;

  constructor(option: string, message: string) {
    super(ErrorCodes.INVALID_OPTION, message);
    this.option = option;
  }
}

/** A lease was released or destroyed twice. */
export class DoubleReleaseError extends LifeguardError {
  constructor(message: string) {
    super(ErrorCodes.DOUBLE_RELEASE, message);
  }
}

/** A lease was handed to a pool that did not lend it. */
export class ForeignLeaseError extends LifeguardError {
  constructor(message: string) {
    super(ErrorCodes.FOREIGN_LEASE, message);
  }
}

/** `lease.resource` was read after the lease ended. */
export class LeaseReleasedError extends LifeguardError {
  constructor(message: string) {
    super(ErrorCodes.LEASE_RELEASED, message);
  }
}

/** The pool revoked the lease: it was held past `reclaimAfterMs` (after a close, `LG_POOL_CLOSED` is used). */
export class LeaseRevokedError extends LifeguardError {
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCodes.LEASE_REVOKED, message, options);
  }
}

/** `factory.create` did not settle within `createTimeoutMs`. */
export class CreateTimeoutError extends LifeguardError {
  constructor(message: string) {
    super(ErrorCodes.CREATE_TIMEOUT, message);
  }
}

/** No waiter (and not `min`) needs a creation any more: the reason of its `CreateContext.unwanted` signal. */
export class CreateUnwantedError extends LifeguardError {
  constructor(message: string) {
    super(ErrorCodes.CREATE_UNWANTED, message);
  }
}

/** `factory.validate` did not settle within `validateTimeoutMs`. */
export class ValidationTimeoutError extends LifeguardError {
  constructor(message: string) {
    super(ErrorCodes.VALIDATION_TIMEOUT, message);
  }
}

/** `factory.destroy` did not settle within `destroyTimeoutMs`; the pool stopped waiting for it. */
export class DestroyTimeoutError extends LifeguardError {
  constructor(message: string) {
    super(ErrorCodes.DESTROY_TIMEOUT, message);
  }
}
