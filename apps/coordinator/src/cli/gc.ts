import { ApiClient, type ClientOptions } from './api-client.ts';
import { say } from './output.ts';

export interface GcOptions extends ClientOptions {
  olderThan: number;
}

export async function gc(options: GcOptions): Promise<void> {
  const { jobs, rows } = await new ApiClient(options).gc(options.olderThan);
  say(`deleted ${jobs} finished job${jobs === 1 ? '' : 's'} older than ${options.olderThan} days (${rows} rows)`);
}
