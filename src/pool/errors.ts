/** The pool's error classes, each with a stable `code` (the base class and codes live in src/internal/errors.ts). */
import { ErrorCodes, LifeguardError } from '../internal/errors.js';

export { ErrorCodes, LifeguardError, InvalidOptionError, InvalidArgumentError, type ErrorCode } from '../internal/errors.js';

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
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCodes.DESTROY_TIMEOUT, message, options);
  }
}

/**
 * Creation failed with an error the factory marked permanent (`CreateContext.permanent`: a wrong password,
 * an unknown database): waiting acquires fail at once instead of at their deadline. `cause` is the error.
 * The pool keeps retrying in the background, with backoff, and lends again once a creation succeeds.
 */
export class CreateFailedError extends LifeguardError {
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCodes.CREATE_FAILED, message, options);
  }
}
