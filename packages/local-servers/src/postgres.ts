import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { installDebianPackage } from './debian.ts';
import { freePort, untilListening } from './ports.ts';

/** Debian puts PostgreSQL's programs under a directory per major version, off the PATH. */
function binDir(): string {
  const onPath = (() => {
    try {
      return execFileSync('which', ['initdb'], { encoding: 'utf8' }).trim();
    } catch {
      return null;
    }
  })();
  if (onPath) return path.dirname(fs.realpathSync(onPath));
  const versions = fs.existsSync('/usr/lib/postgresql') ? fs.readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a)) : [];
  const found = versions.map((v) => `/usr/lib/postgresql/${v}/bin`).find((dir) => fs.existsSync(path.join(dir, 'initdb')));
  if (!found) throw new Error('PostgreSQL is not installed (no initdb on the PATH or under /usr/lib/postgresql)');
  return found;
}

function findOrInstall(): string {
  try {
    return binDir();
  } catch {
    installDebianPackage('postgresql');
    return binDir();
  }
}

/** initdb and postgres refuse to run as root: as root, they run as Debian's `postgres` user. */
function runAs(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

export interface PostgresOptions {
  /**
   * `false` turns `fsync` off: for tests that check what the store does, not that it survives a
   * power loss. Benchmarks keep the default, every commit on disk.
   */
  durable?: boolean;
}

/**
 * A PostgreSQL server of its own (Debian's package, installed when missing): a fresh data
 * directory, 127.0.0.1 and a free port, superuser `webpvm` with trust authentication. `stop()`
 * removes it all.
 */
export class PostgresServer {
  #output = '';
  #databases = 0;

  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    private readonly bin: string,
    readonly port: number,
  ) {
    child.stdout!.on('data', (d) => (this.#output += d));
    child.stderr!.on('data', (d) => (this.#output += d));
  }

  static async start(options: PostgresOptions = {}): Promise<PostgresServer> {
    const bin = findOrInstall();
    const user = runAs();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-postgres-'));
    if (user) fs.chownSync(dir, user.uid, user.gid);
    const ids = user ? { uid: user.uid, gid: user.gid } : {};
    execFileSync(path.join(bin, 'initdb'), ['-D', dir, '-U', 'webpvm', '--auth=trust', '-E', 'UTF8', '--no-instructions'], { stdio: 'pipe', ...ids });
    const port = await freePort();
    const settings = ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'];
    if (options.durable === false) settings.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
    const child = spawn(path.join(bin, 'postgres'), ['-D', dir, '-p', String(port), '-k', dir, ...settings], { stdio: ['ignore', 'pipe', 'pipe'], ...ids });
    const server = new PostgresServer(child, dir, bin, port);
    await untilListening(child, port, 'postgres', () => server.#output);
    // It listens before recovery ends; a connection then is told "the database system is starting up".
    const deadline = Date.now() + 15_000;
    while (!server.#output.includes('ready to accept connections')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`postgres did not become ready:\n${server.#output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return server;
  }

  /** A new, empty database on this server, and its URL (`DATABASE_URL`). */
  createDatabase(name = `webpvm_${++this.#databases}`): string {
    execFileSync(path.join(this.bin, 'createdb'), ['-h', '127.0.0.1', '-p', String(this.port), '-U', 'webpvm', name], { stdio: 'pipe' });
    return this.url(name);
  }

  url(database = 'postgres'): string {
    return `postgres://webpvm@127.0.0.1:${this.port}/${database}`;
  }

  /** The postmaster's: its connections are its children. */
  get pid(): number {
    return this.child.pid!;
  }

  get log(): string {
    return this.#output;
  }

  /** Fast shutdown (SIGINT: open transactions roll back), then the data directory goes. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGINT');
      await exited;
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
