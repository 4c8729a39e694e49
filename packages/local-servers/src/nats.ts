import { type ChildProcess, spawn } from 'node:child_process';
import { ensureDebianPackage } from './debian.ts';
import { freePort, untilListening } from './ports.ts';

/**
 * A throwaway nats-server from Debian's package (installed when missing) on 127.0.0.1 and a
 * free port: core NATS only, the subjects coordinators of one cluster talk on (docs/cluster.md).
 * `stop()` ends it.
 */
export class NatsServer {
  #output = '';

  private constructor(
    readonly port: number,
    private readonly child: ChildProcess,
  ) {}

  static async start(): Promise<NatsServer> {
    ensureDebianPackage('nats-server', 'nats-server');
    const port = await freePort();
    const child = spawn('nats-server', ['--addr', '127.0.0.1', '--port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const server = new NatsServer(port, child);
    child.stdout!.on('data', (d) => (server.#output += d));
    child.stderr!.on('data', (d) => (server.#output += d));
    await untilListening(child, port, 'nats-server', () => server.#output);
    return server;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    await exited;
  }
}
