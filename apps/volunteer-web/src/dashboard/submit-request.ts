import { WebpvmError, type SubmitJobRequest } from '@webpvm/vm-protocol';

export type TaskMode = 'inputs' | 'main';

/** The submit form as typed: every field is text, empty means "the coordinator's default". */
export interface SubmitFormValues {
  name: string;
  program: string;
  mode: TaskMode;
  tasksJson: string;
  replicas: string;
  quorum: string;
  maxAttempts: string;
  taskTimeoutMs: string;
  priority: string;
}

const OPTIONAL_NUMBERS = ['replicas', 'quorum', 'maxAttempts', 'taskTimeoutMs', 'priority'] as const;

/**
 * Turns the form into a request body. Only what the browser must parse (JSON) is checked
 * here; every other rule is the coordinator's, and its error is shown as it comes.
 */
export function buildSubmitRequest(values: SubmitFormValues): SubmitJobRequest {
  const request: SubmitJobRequest = { program: values.program };
  if (values.name.trim()) request.name = values.name.trim();
  const tasks = parseJson(values.tasksJson, values.mode);
  if (values.mode === 'main') request.main = tasks ?? null;
  else if (Array.isArray(tasks)) request.inputs = tasks;
  else if (tasks !== undefined) throw new WebpvmError('E_BAD_REQUEST', 'inputs: expected a JSON array, one element per task');
  for (const field of OPTIONAL_NUMBERS) {
    const text = values[field].trim();
    if (text) request[field] = Number(text);
  }
  return request;
}

function parseJson(text: string, field: TaskMode): unknown {
  if (!text.trim()) return undefined;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new WebpvmError('E_BAD_REQUEST', `${field}: not valid JSON (${error instanceof Error ? error.message : String(error)})`);
  }
}
