/**
 * Errors of the fleet budget. Like every Lifeguard error they carry a stable `code` (`LG_BUDGET_...`)
 * that never changes meaning; messages say what failed, why, and the budget's state at that moment.
 */
import { LifeguardError } from '../internal/errors.js';

export const BudgetErrorCodes = Object.freeze({
  TIMEOUT: 'LG_BUDGET_TIMEOUT',
  UNAVAILABLE: 'LG_BUDGET_UNAVAILABLE',
  ABORTED: 'LG_BUDGET_ABORTED',
  CLOSED: 'LG_BUDGET_CLOSED',
  PERMIT_LOST: 'LG_BUDGET_PERMIT_LOST',
} as const);

export type BudgetErrorCode = (typeof BudgetErrorCodes)[keyof typeof BudgetErrorCodes];

/** Base of the budget's errors: a `LifeguardError` whose `code` is one of {@link BudgetErrorCodes}. */
export class BudgetError extends LifeguardError<BudgetErrorCode> {
  /** The budget's key (its name, shared by every process that uses it). */
  readonly budgetKey: string;

  constructor(code: BudgetErrorCode, budgetKey: string, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.budgetKey = budgetKey;
  }
}

/** The numbers a timeout reports: what the budget looked like when the deadline passed. */
export interface BudgetTimeoutState {
  readonly limit: number;
  /** Permits held fleet-wide (all processes) at the last look, or by this process for an in-process budget. */
  readonly held: number;
  /** Acquires waiting fleet-wide at the last look. */
  readonly waiting: number;
  /** Permits held by this process. */
  readonly heldHere: number;
  /** How long ago `held` and `waiting` were read (ms); null when never (the store never answered). */
  readonly seenAgoMs: number | null;
  readonly waitedMs: number;
}

/** No permit became free before the acquire deadline: the budget is exhausted. */
export class BudgetTimeoutError extends BudgetError {
  readonly limit: number;
  /** Permits held fleet-wide at the last look. */
  readonly held: number;
  /** Acquires waiting fleet-wide at the last look. */
  readonly waiting: number;
  /** Permits held by this process. */
  readonly heldHere: number;

  constructor(budgetKey: string, state: BudgetTimeoutState, note?: string) {
    const seen = state.seenAgoMs === null ? 'fleet figures never read' : state.seenAgoMs === 0 ? 'fleet figures current' : `fleet figures read ${Math.round(state.seenAgoMs)} ms ago`;
    super(
      BudgetErrorCodes.TIMEOUT,
      budgetKey,
      `budget "${budgetKey}" exhausted: no permit within ${Math.round(state.waitedMs)} ms (key="${budgetKey}" limit=${state.limit} heldHere=${state.heldHere} heldInFleet=${state.held} waitingInFleet=${state.waiting}; ${seen})${note === undefined ? '' : `; ${note}`}`,
    );
    this.limit = state.limit;
    this.held = state.held;
    this.waiting = state.waiting;
    this.heldHere = state.heldHere;
  }
}

/** The shared store (Redis) could not be reached or did not answer in time. `cause`: the driver's error. */
export class BudgetUnavailableError extends BudgetError {
  /** `host:port` (or socket path) of the store. */
  readonly address: string;

  constructor(budgetKey: string, address: string, what: string, options?: ErrorOptions) {
    const cause = options?.cause;
    const why = cause instanceof Error ? cause.message : cause === undefined ? 'unknown cause' : typeof cause === 'string' ? cause : JSON.stringify(cause);
    super(BudgetErrorCodes.UNAVAILABLE, budgetKey, `budget "${budgetKey}": ${what}: Redis at ${address} is unavailable (${why})`, options);
    this.address = address;
  }
}

/** The caller's `AbortSignal` fired before a permit was granted. `cause`: the signal's reason. */
export class BudgetAbortedError extends BudgetError {
  constructor(budgetKey: string, message: string, options?: ErrorOptions) {
    super(BudgetErrorCodes.ABORTED, budgetKey, message, options);
  }
}

/** The budget was closed: acquires are refused, waiters rejected, and held permits lost. */
export class BudgetClosedError extends BudgetError {
  constructor(budgetKey: string, message: string) {
    super(BudgetErrorCodes.CLOSED, budgetKey, message);
  }
}

/**
 * The reason of a `permit.lost` signal: the permit could not be refreshed in time, was reclaimed by the
 * store, or its budget was closed. The connection it paid for must be closed: by {@link goneAt}.
 */
export class PermitLostError extends BudgetError {
  readonly permitId: string;
  /**
   * From when (milliseconds of the budget's clock) another process may be granted this permit: until then
   * the connection it paid for may finish what it is doing (an HTTP response), and the store keeps counting
   * the permit until its holder releases it. `-Infinity` when it may already be someone else's (reclaimed
   * by the store, or given back because the budget was closed): close at once.
   */
  readonly goneAt: number;

  constructor(budgetKey: string, permitId: string, message: string, options?: ErrorOptions, goneAt = -Infinity) {
    super(BudgetErrorCodes.PERMIT_LOST, budgetKey, message, options);
    this.permitId = permitId;
    this.goneAt = goneAt;
  }
}
