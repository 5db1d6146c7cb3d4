/** The base error class, the stable pool codes and InvalidOptionError: shared by every folder without importing the pool. */
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
  INVALID_ARGUMENT: 'LG_INVALID_ARGUMENT',
  CREATE_FAILED: 'LG_CREATE_FAILED',
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

/** An option was unknown, of the wrong type, out of range, or impossible together with another. */
export class InvalidOptionError extends LifeguardError {
  readonly option: string;

  constructor(option: string, message: string) {
    super(ErrorCodes.INVALID_OPTION, message);
    this.option = option;
  }
}


/** A call got an argument of the wrong kind (not an option: e.g. `use()` without a function). Nothing was acquired. */
export class InvalidArgumentError extends LifeguardError {
  readonly argument: string;

  constructor(argument: string, message: string) {
    super(ErrorCodes.INVALID_ARGUMENT, message);
    this.argument = argument;
  }
}
