import { WebpvmError } from '@webpvm/vm-protocol';
import { describe, expect, it } from 'vitest';
import { buildSubmitRequest, type SubmitFormValues } from '../src/dashboard/submit-request.ts';

const form = (values: Partial<SubmitFormValues>): SubmitFormValues => ({
  name: '',
  program: 'export default (ctx, x) => x;',
  mode: 'inputs',
  tasksJson: '',
  replicas: '',
  quorum: '',
  maxAttempts: '',
  taskTimeoutMs: '',
  priority: '',
  ...values,
});

describe('buildSubmitRequest', () => {
  it('leaves empty fields to the coordinator’s defaults', () => {
    expect(buildSubmitRequest(form({ tasksJson: '[1, 2]' }))).toEqual({ program: 'export default (ctx, x) => x;', inputs: [1, 2] });
  });

  it('sends the numbers and the name that were typed', () => {
    const request = buildSubmitRequest(form({ name: ' pi ', tasksJson: '[0]', replicas: '3', quorum: '2', taskTimeoutMs: '5000' }));
    expect(request).toMatchObject({ name: 'pi', replicas: 3, quorum: 2, taskTimeoutMs: 5000 });
    expect(request).not.toHaveProperty('priority');
  });

  it('sends one root task in main mode', () => {
    expect(buildSubmitRequest(form({ mode: 'main', tasksJson: '{"n": 4}' }))).toMatchObject({ main: { n: 4 } });
    expect(buildSubmitRequest(form({ mode: 'main' }))).toMatchObject({ main: null });
  });

  it('rejects JSON it cannot parse, and inputs that are not an array', () => {
    expect(() => buildSubmitRequest(form({ tasksJson: '[1,' }))).toThrow(WebpvmError);
    expect(() => buildSubmitRequest(form({ tasksJson: '{"a": 1}' }))).toThrow(/expected a JSON array/);
  });
});
