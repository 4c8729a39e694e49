import {
  ApiError,
  AppendInputsResponse,
  CreateTokenResponse,
  describeIssues,
  type ErrorCode,
  GcResponse,
  HostList,
  isErrorCode,
  JobId,
  JobList,
  JobResults,
  JobStatus,
  type SubmitJobRequest,
  SubmitJobResponse,
  TokenInfo,
  TokenList,
  type TokenQuotas,
  type TokenScope,
  WebpvmError,
} from '@webpvm/vm-protocol';
import type { ZodError } from 'zod';

export const DEFAULT_URL = 'http://127.0.0.1:8080';

export interface ClientOptions {
  url: string;
  token?: string | undefined;
}

interface Schema<T> {
  safeParse(value: unknown): { success: true; data: T } | { success: false; error: ZodError };
}

type Method = 'GET' | 'POST' | 'DELETE';

/** A request body: JSON, or text of its own media type (a part of a job's inputs, NDJSON). */
type Body = { json: unknown } | { text: string; type: string };

/** Used when an error body carries no code we know. */
const CODE_BY_STATUS: Record<number, ErrorCode> = {
  400: 'E_BAD_REQUEST',
  401: 'E_UNAUTHORIZED',
  403: 'E_FORBIDDEN',
  404: 'E_NOT_FOUND',
  409: 'E_CONFLICT',
  413: 'E_TOO_LARGE',
  429: 'E_RATE_LIMITED',
};

/**
 * The coordinator's REST API over fetch. Every failure comes out as a WebpvmError:
 * the coordinator's own `{error: {code, message}}`, an unreachable coordinator, or an answer
 * that does not match the protocol.
 */
export class ApiClient {
  /** The coordinator's base URL, without a trailing slash. */
  readonly url: string;
  readonly #token: string | undefined;

  constructor(options: ClientOptions) {
    this.url = baseUrl(options.url);
    this.#token = options.token || undefined;
  }

  async submitJob(request: SubmitJobRequest): Promise<SubmitJobResponse> {
    return this.#json('POST', '/api/jobs', SubmitJobResponse, { json: request });
  }

  /** Appends a part of an open job's inputs (`ndjson`: one JSON value a line); `close` ends its inputs. */
  async appendInputs(id: string, ndjson: string, close: boolean): Promise<AppendInputsResponse> {
    const path = `${jobPath(id)}/inputs${close ? '?close=true' : ''}`;
    return this.#json('POST', path, AppendInputsResponse, { text: ndjson, type: 'application/x-ndjson' });
  }

  async listJobs(): Promise<JobList> {
    return this.#json('GET', '/api/jobs', JobList);
  }

  async getJob(id: string): Promise<JobStatus> {
    return this.#json('GET', jobPath(id), JobStatus);
  }

  async getResults(id: string): Promise<JobResults> {
    return this.#json('GET', `${jobPath(id)}/results`, JobResults);
  }

  /** One JSON line per result, as the coordinator writes them. */
  async streamResults(id: string): Promise<AsyncIterable<Uint8Array>> {
    const response = await this.#request('GET', `${jobPath(id)}/results?format=ndjson`);
    if (response.body === null) throw unexpected('GET', `${jobPath(id)}/results`, 'the answer has no body');
    return response.body;
  }

  /**
   * Root outcomes as NDJSON lines `{cursor, index, ok, result | error}`, stored after `after`;
   * with `follow`, more as they are stored, until the job ends.
   */
  async streamOutcomes(id: string, after: number, follow: boolean): Promise<AsyncIterable<Uint8Array>> {
    const path = `${jobPath(id)}/results?format=ndjson&after=${after}${follow ? '&follow=true' : ''}`;
    const response = await this.#request('GET', path);
    if (response.body === null) throw unexpected('GET', `${jobPath(id)}/results`, 'the answer has no body');
    return response.body;
  }

  /** Answers the job's status after the cancel. */
  async cancelJob(id: string): Promise<JobStatus> {
    return this.#json('DELETE', jobPath(id), JobStatus);
  }

  async createToken(request: { name?: string; scope?: TokenScope; expiresInDays?: number; quotas?: TokenQuotas }): Promise<CreateTokenResponse> {
    return this.#json('POST', '/api/tokens', CreateTokenResponse, { json: request });
  }

  async listTokens(): Promise<TokenList> {
    return this.#json('GET', '/api/tokens', TokenList);
  }

  async revokeToken(id: string): Promise<TokenInfo> {
    return this.#json('DELETE', `/api/tokens/${encodeURIComponent(id)}`, TokenInfo);
  }

  async gc(olderThanDays: number): Promise<GcResponse> {
    return this.#json('POST', '/api/admin/gc', GcResponse, { json: { olderThanDays } });
  }

  async listHosts(): Promise<HostList> {
    return this.#json('GET', '/api/hosts', HostList);
  }

  async health(): Promise<void> {
    const response = await this.#request('GET', '/healthz');
    await response.body?.cancel();
  }

  async #json<T>(method: Method, path: string, schema: Schema<T>, body?: Body): Promise<T> {
    const response = await this.#request(method, path, body);
    const text = await response.text();
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw unexpected(method, path, `not JSON: ${snippet(text)}`);
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) throw unexpected(method, path, describeIssues(parsed.error));
    // The answer schemas have no defaults or transforms, so the checked value is the data;
    // returning it whole keeps fields a newer coordinator adds (`status --json` shows them).
    return value as T;
  }

  async #request(method: Method, path: string, body?: Body): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.#token !== undefined) headers.authorization = `Bearer ${this.#token}`;
    if (body !== undefined) headers['content-type'] = 'json' in body ? 'application/json' : body.type;
    let response: Response;
    try {
      response = await fetch(this.url + path, {
        method,
        headers,
        body: body === undefined ? undefined : 'json' in body ? JSON.stringify(body.json) : body.text,
      });
    } catch (error) {
      throw new WebpvmError('E_INTERNAL', `cannot reach the coordinator at ${this.url}: ${describeCause(error)}`);
    }
    if (!response.ok) throw await this.#errorFrom(response, method, path);
    return response;
  }

  async #errorFrom(response: Response, method: Method, path: string): Promise<WebpvmError> {
    const text = await response.text().catch(() => '');
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const known = ApiError.safeParse(body);
    const code = known.success ? (known.data.error.code as ErrorCode) : codeForStatus(response.status);
    const message = known.success
      ? known.data.error.message
      : (errorMessageOf(body) ?? `${method} ${path} answered HTTP ${response.status}${text ? `: ${snippet(text)}` : ''}`);
    if (code === 'E_UNAUTHORIZED' && this.#token === undefined) {
      return new WebpvmError(code, `${message}; pass --token or set WEBPVM_TOKEN`);
    }
    return new WebpvmError(code, message);
  }
}

function baseUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new WebpvmError('E_BAD_REQUEST', `not a valid coordinator URL: ${url}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new WebpvmError('E_BAD_REQUEST', `the coordinator URL must be http or https: ${url}`);
  }
  return url.replace(/\/+$/, '');
}

function jobPath(id: string): string {
  if (!JobId.safeParse(id).success) {
    throw new WebpvmError('E_BAD_REQUEST', `not a job id: ${JSON.stringify(id)} (4-32 lowercase letters or digits)`);
  }
  return `/api/jobs/${id}`;
}

function codeForStatus(status: number): ErrorCode {
  return CODE_BY_STATUS[status] ?? 'E_INTERNAL';
}

/** A message from an error body whose code is not in the registry (an older or newer coordinator). */
function errorMessageOf(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || !('error' in body)) return undefined;
  const error = body.error;
  if (typeof error !== 'object' || error === null || !('message' in error)) return undefined;
  if (typeof error.message !== 'string') return undefined;
  const code = 'code' in error && typeof error.code === 'string' && !isErrorCode(error.code) ? ` [${error.code}]` : '';
  return error.message + code;
}

function describeCause(error: unknown): string {
  const cause = error instanceof Error && error.cause !== undefined ? error.cause : error;
  if (!(cause instanceof Error)) return String(cause);
  // Connecting to a name with several addresses fails with an AggregateError whose message is empty.
  const code = (cause as NodeJS.ErrnoException).code;
  return cause.message || code || cause.name;
}

function unexpected(method: Method, path: string, detail: string): WebpvmError {
  return new WebpvmError('E_INTERNAL', `unexpected answer to ${method} ${path}: ${detail}`);
}

function snippet(text: string): string {
  const line = text.trim().replace(/\s+/g, ' ');
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}
