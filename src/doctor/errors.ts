import { LifeguardError } from '../pool/errors.js';

/**
 * Errors of the doctor. They carry a stable `code` like every Lifeguard error; codes never change meaning.
 * Messages say what was read, what went wrong and what to do about it.
 */
export const DoctorErrorCodes = Object.freeze({
  /** Not Linux, or a Linux without `/proc/<pid>/net/tcp` (procfs not mounted, or a sandbox hiding it). */
  UNSUPPORTED: 'LG_DOCTOR_UNSUPPORTED',
  /** No process with that pid (or it exited while being read). */
  NO_PROCESS: 'LG_DOCTOR_NO_PROCESS',
  /** The process exists but belongs to another user: its file descriptors cannot be listed. */
  PERMISSION: 'LG_DOCTOR_PERMISSION',
  /** A `/proc` file did not have the expected layout. */
  PARSE: 'LG_DOCTOR_PARSE',
} as const);

export type DoctorErrorCode = (typeof DoctorErrorCodes)[keyof typeof DoctorErrorCodes];

export class DoctorError extends LifeguardError<DoctorErrorCode> {}
