import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@webpvm/local-servers';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(repoRoot, 'apps/coordinator/bin/webpvm.js');

export const ADMIN_TOKEN = 'wpvm_e2e-admin-token';
const STOP_TIMEOUT_MS = 10_000;

/**
 * A real coordinator process on a free port with its own temporary data directory. It can be
 * killed (SIGKILL, no chance to flush) and started again on the same port and data.
 */
export class CoordinatorProcess {
  private child: ChildProcess | null = null;
  private output = '';

  private constructor(
    readonly port: number,
    readonly dataDir: string,
    private readonly env: Record<string, string>,
  ) {}

  /** With `publicUrl`, the coordinator is told its own URL (`WEBPVM_PUBLIC_URL`): pages of a cluster learn it and fail over to it. */
  static async start(env: Record<string, string> = {}, { publicUrl = false } = {}): Promise<CoordinatorProcess> {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-e2e-'));
    const port = await freePort();
    const coordinator = new CoordinatorProcess(port, dataDir, publicUrl ? { ...env, WEBPVM_PUBLIC_URL: `http://127.0.0.1:${port}` } : env);
    await coordinator.launch();
    return coordinator;
  }

  get url(): string {
    return `${this.env.WEBPVM_TLS_CERT ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  get logs(): string {
    return this.output;
  }

  async launch(): Promise<void> {
    const child = spawn(process.execPath, [cli, 'start', '--port', String(this.port), '--data', this.dataDir], {
      cwd: repoRoot,
      env: {
        ...process.env,
        WEBPVM_ADMIN_TOKEN: ADMIN_TOKEN,
        WEBPVM_LOG_LEVEL: 'warn',
        WEBPVM_HEARTBEAT_MS: '1000',
        WEBPVM_HOST_TIMEOUT_MS: '5000',
        WEBPVM_RECONNECT_GRACE_MS: '8000',
        WEBPVM_CHECKPOINT_INTERVAL_MS: '100',
        ...this.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stdout!.on('data', (d) => (this.output += d));
    child.stderr!.on('data', (d) => (this.output += d));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`coordinator exited with ${child.exitCode}:\n${this.output}`);
      try {
        if ((await fetch(`${this.url}/healthz`)).ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`coordinator did not become healthy:\n${this.output}`);
  }

  /** Kill without warning, as a crash or a power cut would. */
  async kill(): Promise<void> {
    await this.stopWith('SIGKILL');
  }

  /** SIGTERM, as an upgrade stops it: it lets go of its jobs, and its data stay for `launch`. */
  async terminate(): Promise<void> {
    await this.stopWith('SIGTERM');
  }

  async stop(): Promise<void> {
    try {
      await this.stopWith('SIGTERM');
    } finally {
      fs.rmSync(this.dataDir, { recursive: true, force: true });
    }
  }

  /** A coordinator that does not stop within STOP_TIMEOUT_MS of SIGTERM fails the test, then is killed. */
  private async stopWith(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill(signal);
    const code = await Promise.race([exited, new Promise<'late'>((r) => setTimeout(() => r('late'), STOP_TIMEOUT_MS))]);
    this.child = null;
    if (code === 'late') {
      child.kill('SIGKILL');
      await exited;
      throw new Error(`the coordinator did not stop within ${STOP_TIMEOUT_MS} ms of ${signal}:\n${this.output}`);
    }
    if (signal === 'SIGTERM' && code !== 0) throw new Error(`the coordinator exited with ${code} on SIGTERM:\n${this.output}`);
  }
}
