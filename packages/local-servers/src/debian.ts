import { execFileSync } from 'node:child_process';

/** Makes sure a program from Debian is on the PATH, installing its package when it is not. */
export function ensureDebianPackage(program: string, pkg: string): void {
  try {
    execFileSync('which', [program], { stdio: 'ignore' });
    return;
  } catch {
    installDebianPackage(pkg);
  }
}

/** apt-get install, as root or through sudo. */
export function installDebianPackage(pkg: string): void {
  const asRoot = (args: string[]) => (process.getuid?.() === 0 ? args : ['sudo', ...args]);
  const run = (args: string[]) => {
    const [command, ...rest] = asRoot(args);
    execFileSync(command!, rest, { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  };
  run(['apt-get', 'update', '-qq']);
  run(['apt-get', 'install', '-y', '-qq', pkg]);
}
