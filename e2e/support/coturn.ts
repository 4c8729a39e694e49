import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureDebianPackage, freePort, untilListening } from '@webpvm/local-servers';

/**
 * coturn from Debian, a TURN server on 127.0.0.1 with one long-term user. Loopback peers are
 * allowed (coturn refuses them by default): here both tabs and the relay live on one machine.
 */
export class Coturn {
  #output = '';

  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    readonly port: number,
  ) {
    child.stdout!.on('data', (d) => (this.#output += d));
    child.stderr!.on('data', (d) => (this.#output += d));
  }

  static readonly user = 'webpvm';
  static readonly password = 'turn-secret';

  static async start(): Promise<Coturn> {
    ensureDebianPackage('turnserver', 'coturn');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-coturn-'));
    const port = await freePort();
    const child = spawn(
      'turnserver',
      [
        '-n', '--no-cli', '--no-tls', '--no-dtls', '--allow-loopback-peers', '--lt-cred-mech', '--realm', 'webpvm',
        '--user', `${Coturn.user}:${Coturn.password}`, '--userdb', path.join(dir, 'turndb'), '--pidfile', path.join(dir, 'turn.pid'),
        '-L', '127.0.0.1', '-E', '127.0.0.1', '-p', String(port), '--min-port', '50000', '--max-port', '50999',
        '--log-file', 'stdout', '--simple-log', '--verbose',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const turn = new Coturn(child, dir, port);
    await untilListening(child, port, 'turnserver', () => turn.#output);
    return turn;
  }

  /** WEBPVM_ICE_SERVERS naming this server. */
  get iceServers(): string {
    return JSON.stringify([{ urls: `turn:127.0.0.1:${this.port}?transport=udp`, username: Coturn.user, credential: Coturn.password }]);
  }

  /** Relay allocations the server granted so far (its log says so for each). */
  get allocations(): number {
    return (this.#output.match(/ALLOCATE processed, success/g) ?? []).length;
  }

  get log(): string {
    return this.#output;
  }

  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    await exited;
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
