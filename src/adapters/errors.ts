import { LifeguardError } from '../pool/errors.js';

/** Codes of the errors raised by the driver adapters (`lifeguard/pg`, `lifeguard/mysql2`, `lifeguard/ioredis`). */
export const AdapterErrorCodes = Object.freeze({
  DRIVER_MISSING: 'LG_DRIVER_MISSING',
  CONNECT_TIMEOUT: 'LG_CONNECT_TIMEOUT',
  CONNECTION_LOST: 'LG_CONNECTION_LOST',
} as const);

export type AdapterErrorCode = (typeof AdapterErrorCodes)[keyof typeof AdapterErrorCodes];

/** Importing an adapter whose driver package is not installed. */
export class DriverMissingError extends LifeguardError<AdapterErrorCode> {
  /** The npm package to install. */
  readonly packageName: string;

  constructor(packageName: string, adapter: string, options?: ErrorOptions) {
    super(AdapterErrorCodes.DRIVER_MISSING, `${adapter} needs the "${packageName}" package, which could not be loaded: install it with "npm install ${packageName}"`, options);
    this.packageName = packageName;
  }
}

/** A connection attempt did not complete within `connectTimeoutMs`; the half-open connection was destroyed. */
export class ConnectTimeoutError extends LifeguardError<AdapterErrorCode> {
  constructor(message: string) {
    super(AdapterErrorCodes.CONNECT_TIMEOUT, message);
  }
}

/**
 * A pooled connection broke on its own: the server closed it (an idle timeout, a kill, a restart) or the
 * socket failed. The reason passed to `CreateContext.invalidate`, so the `cause` of the `destroy` event.
 * `cause`: the driver's error, when there was one.
 */
export class ConnectionLostError extends LifeguardError<AdapterErrorCode> {
  constructor(message: string, options?: ErrorOptions) {
    super(AdapterErrorCodes.CONNECTION_LOST, message, options);
  }
}
