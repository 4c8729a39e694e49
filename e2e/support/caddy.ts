import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureDebianPackage, freePort, untilListening } from '@webpvm/local-servers';

/**
 * Caddy from Debian as the TLS proxy in front of a plain-http coordinator, configured as the
 * README's deployment section says: `reverse_proxy` to the coordinator, which passes on the Host
 * header, WebSocket upgrades and the coordinator's own headers.
 */
export class CaddyProxy {
  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    readonly port: number,
  ) {}

  static async start(upstream: string, certFile: string, keyFile: string): Promise<CaddyProxy> {
    ensureDebianPackage('caddy', 'caddy');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-caddy-'));
    const port = await freePort();
    const caddyfile = path.join(dir, 'Caddyfile');
    fs.writeFileSync(caddyfile, `{\n\tadmin off\n\tauto_https disable_redirects\n}\n\nhttps://127.0.0.1:${port} {\n\ttls ${certFile} ${keyFile}\n\treverse_proxy ${new URL(upstream).host}\n}\n`);
    let output = '';
    const child = spawn('caddy', ['run', '--config', caddyfile, '--adapter', 'caddyfile'], {
      env: { ...process.env, HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    await untilListening(child, port, 'caddy', () => output);
    return new CaddyProxy(child, dir, port);
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    await exited;
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
