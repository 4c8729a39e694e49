import { useRef, useState, type FormEvent, type RefObject } from 'react';
import type { ApiClient } from './api-client.ts';
import { errorText } from './error-text.ts';
import { buildSubmitRequest, type SubmitFormValues, type TaskMode } from './submit-request.ts';

const EMPTY: SubmitFormValues = {
  name: '',
  program: '',
  mode: 'inputs',
  tasksJson: '',
  replicas: '',
  quorum: '',
  maxAttempts: '',
  taskTimeoutMs: '',
  priority: '',
};

const NUMBER_FIELDS = [
  ['replicas', 'Replicas', 'job-replicas'],
  ['quorum', 'Quorum', 'job-quorum'],
  ['maxAttempts', 'Max attempts', 'job-max-attempts'],
  ['taskTimeoutMs', 'Task timeout (ms)', 'job-timeout'],
  ['priority', 'Priority', 'job-priority'],
] as const;

export function SubmitForm({ client, onSubmitted }: { client: ApiClient; onSubmitted(id: string): void }) {
  const [values, setValues] = useState(EMPTY);
  // Files are read when the form is sent, so a file picked just before "Submit" is never missed.
  const [programFile, setProgramFile] = useState<File | null>(null);
  const [inputsFile, setInputsFile] = useState<File | null>(null);
  const programInput = useRef<HTMLInputElement>(null);
  const inputsInput = useRef<HTMLInputElement>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  const set = (field: keyof SubmitFormValues) => (e: { target: { value: string } }) =>
    setValues((v) => ({ ...v, [field]: e.target.value }));

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setNotice(null);
    try {
      const request = buildSubmitRequest({
        ...values,
        program: programFile ? await programFile.text() : values.program,
        tasksJson: inputsFile ? await inputsFile.text() : values.tasksJson,
      });
      const created = await client.submitJob(request);
      setNotice(`Submitted job ${created.id} with ${created.tasks} task${created.tasks === 1 ? '' : 's'}.`);
      onSubmitted(created.id);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form onSubmit={submit}>
      <div className="row">
        <label>
          Job name
          <input data-testid="job-name" value={values.name} onChange={set('name')} placeholder="job" />
        </label>
        <label>
          Program file (.js, .ts, .mjs)
          <input
            data-testid="program-file"
            ref={programInput}
            type="file"
            accept=".js,.ts,.mjs,.mts"
            onChange={(e) => setProgramFile(e.target.files?.[0] ?? null)}
          />
        </label>
        {programFile && <ClearFile input={programInput} onClear={() => setProgramFile(null)} />}
      </div>
      <div className="row">
        <label className="wide">
          {programFile ? `Program: using ${programFile.name} (clear the file to use this text)` : 'Program source'}
          <textarea
            data-testid="program-text"
            className="code"
            spellCheck={false}
            value={values.program}
            onChange={set('program')}
            placeholder={'export default async (ctx, input) => input * 2;'}
          />
        </label>
      </div>
      <div className="row">
        <label>
          Tasks
          <select value={values.mode} onChange={(e) => setValues((v) => ({ ...v, mode: e.target.value as TaskMode }))}>
            <option value="inputs">inputs: one task per array element</option>
            <option value="main">main: one root task that spawns the rest</option>
          </select>
        </label>
        <label>
          {values.mode === 'inputs' ? 'Inputs file (.json)' : 'Main input file (.json)'}
          <input
            data-testid="inputs-file"
            ref={inputsInput}
            type="file"
            accept=".json,application/json"
            onChange={(e) => setInputsFile(e.target.files?.[0] ?? null)}
          />
        </label>
        {inputsFile && <ClearFile input={inputsInput} onClear={() => setInputsFile(null)} />}
      </div>
      <div className="row">
        <label className="wide">
          {inputsFile ? `Inputs: using ${inputsFile.name} (clear the file to use this text)` : values.mode === 'inputs' ? 'Inputs (JSON array)' : 'Main input (JSON)'}
          <textarea
            data-testid="inputs-json"
            className="code"
            spellCheck={false}
            value={values.tasksJson}
            onChange={set('tasksJson')}
            placeholder={values.mode === 'inputs' ? '[1, 2, 3]' : '{"workers": 4}'}
          />
        </label>
      </div>
      <div className="row">
        {NUMBER_FIELDS.map(([field, label, testId]) => (
          <label key={field}>
            {label}
            <input data-testid={testId} type="number" min={1} value={values[field]} onChange={set(field)} placeholder="default" />
          </label>
        ))}
      </div>
      <div className="row">
        <button data-testid="submit-job" type="submit" disabled={busy}>
          {busy ? 'Submitting…' : 'Submit job'}
        </button>
        {notice && <span className="notice">{notice}</span>}
      </div>
      {error && (
        <p className="error" data-testid="submit-error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

function ClearFile({ input, onClear }: { input: RefObject<HTMLInputElement | null>; onClear(): void }) {
  const clear = () => {
    if (input.current) input.current.value = '';
    onClear();
  };
  return (
    <button type="button" className="secondary" onClick={clear}>
      Clear file
    </button>
  );
}
