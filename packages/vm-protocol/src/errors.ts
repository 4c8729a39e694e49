import type { z } from 'zod';

/**
 * The one registry of webpvm error codes. A code is stable: clients match on it, so
 * rename one only with a migration note. `status` is the HTTP status the REST API answers with.
 */
export const ERRORS = {
  E_BAD_FRAME: { status: 400, message: 'the message does not match the protocol' },
  E_BAD_REQUEST: { status: 400, message: 'the request body is not valid' },
  E_BAD_PROGRAM: { status: 400, message: 'the program cannot be loaded' },
  E_TOO_LARGE: { status: 413, message: 'the input is over its size limit' },
  E_PROTOCOL_VERSION: { status: 400, message: 'unsupported protocol version' },
  E_UNAUTHORIZED: { status: 401, message: 'a valid bearer token is required' },
  E_FORBIDDEN: { status: 403, message: 'this token may not do that' },
  E_NOT_FOUND: { status: 404, message: 'no such resource' },
  E_CONFLICT: { status: 409, message: 'the resource is not in a state that allows this' },
  E_NOT_ASSIGNED: { status: 409, message: 'that task is not assigned to this host' },
  E_HOST_AUTH: { status: 401, message: 'unknown host or wrong secret' },
  E_RATE_LIMITED: { status: 429, message: 'too many requests' },
  E_STORE_UNAVAILABLE: { status: 503, message: 'the store cannot be written now; try again later' },
  E_TASK_FAILED: { status: 500, message: 'the task threw an error' },
  E_TASK_TIMEOUT: { status: 500, message: 'the task exceeded its deadline' },
  E_HOST_FAULT: { status: 500, message: "the host could not run the task, through no fault of the task's" },
  E_TASK_LOST: { status: 500, message: 'the task was lost with its host too many times' },
  E_NO_QUORUM: { status: 500, message: "the task's replicas never agreed" },
  E_VALIDATE: { status: 400, message: "the program's validate could not judge two results" },
  E_INTERNAL: { status: 500, message: 'internal error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];

/** The shape every error takes on the wire: over HTTP, WebSocket and postMessage alike. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
}

export class WebpvmError extends Error {
  override readonly name = 'WebpvmError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string = ERRORS[code].message) {
    super(message);
    this.code = code;
  }

  get status(): number {
    return ERRORS[this.code].status;
  }

  toJSON(): ErrorBody {
    return { code: this.code, message: this.message };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERRORS, value);
}

/** The readable one-line form of a zod failure: `path: message; path: message`. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}
