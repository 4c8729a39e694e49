import { ApiClient, type ClientOptions } from './api-client.ts';
import { hostTable, printJson } from './output.ts';

export interface HostsOptions extends ClientOptions {
  json?: boolean;
}

export async function hosts(options: HostsOptions): Promise<void> {
  const list = await new ApiClient(options).listHosts();
  if (options.json) printJson(list);
  else process.stdout.write(list.hosts.length === 0 ? 'no hosts\n' : `${hostTable(list.hosts)}\n`);
}
