import {
  ApiError,
  HostList,
  JobList,
  JobResults,
  JobStatus,
  MigrationList,
  SubmitJobResponse,
  TaskList,
  WebpvmError,
  describeIssues,
  isErrorCode,
  type SubmitJobRequest,
} from '@webpvm/vm-protocol';

type ParseResult<T> = { success: true; data: T } | { success: false; error: Parameters<typeof describeIssues>[0] };
interface Schema<T> {
  safeParse(data: unknown): ParseResult<T>;
}

const resultsPath = (id: string) => `/api/jobs/${encodeURIComponent(id)}/results`;

/** The coordinator's REST API, same origin, authorised by a bearer token. */
export class ApiClient {
  #token: string;

  constructor(token: string) {
    this.#token = token;
  }

  listJobs(): Promise<JobList> {
    return this.#request('GET', '/api/jobs', JobList);
  }

  submitJob(job: SubmitJobRequest): Promise<SubmitJobResponse> {
    return this.#request('POST', '/api/jobs', SubmitJobResponse, job);
  }

  cancelJob(id: string): Promise<JobStatus> {
    return this.#request('DELETE', `/api/jobs/${encodeURIComponent(id)}`, JobStatus);
  }

  results(id: string): Promise<JobResults> {
    return this.#request('GET', resultsPath(id), JobResults);
  }

  tasks(id: string): Promise<TaskList> {
    return this.#request('GET', `/api/jobs/${encodeURIComponent(id)}/tasks`, TaskList);
  }

  migrations(id: string): Promise<MigrationList> {
    return this.#request('GET', `/api/jobs/${encodeURIComponent(id)}/migrations`, MigrationList);
  }

  /** The results file exactly as the coordinator serves it, for downloading. */
  async resultsFile(id: string): Promise<Blob> {
    const response = await this.#fetch('GET', resultsPath(id));
    return response.blob();
  }

  listHosts(): Promise<HostList> {
    return this.#request('GET', '/api/hosts', HostList);
  }

  async #request<T>(method: string, path: string, schema: Schema<T>, body?: unknown): Promise<T> {
    const response = await this.#fetch(method, path, body);
    const parsed = schema.safeParse(await response.json().catch(() => undefined));
    if (!parsed.success) throw new WebpvmError('E_BAD_FRAME', `unexpected answer from ${path}: ${describeIssues(parsed.error)}`);
    return parsed.data;
  }

  async #fetch(method: string, path: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (error) {
      throw new WebpvmError('E_INTERNAL', `cannot reach the coordinator: ${String(error)}`);
    }
    if (!response.ok) throw await errorOf(response);
    return response;
  }
}

/** An API error keeps the coordinator's code; a bare HTTP failure gets the code of its status. */
async function errorOf(response: Response): Promise<WebpvmError> {
  const parsed = ApiError.safeParse(await response.json().catch(() => undefined));
  if (parsed.success && isErrorCode(parsed.data.error.code)) {
    return new WebpvmError(parsed.data.error.code, parsed.data.error.message);
  }
  const code = response.status === 401 ? 'E_UNAUTHORIZED' : response.status === 404 ? 'E_NOT_FOUND' : 'E_INTERNAL';
  return new WebpvmError(code, `HTTP ${response.status} ${response.statusText}`.trim());
}
