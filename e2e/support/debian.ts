import { execFileSync } from 'node:child_process';

/** Makes sure a program from Debian is installed, installing its package (apt-get) when it is not. */
export function ensureDebianPackage(program: string, pkg: string): void {
  try {
    execFileSync('which', [program], { stdio: 'ignore' });
    return;
  } catch {
    // not installed yet
  }
  const sudo = process.getuid?.() === 0 ? [] : ['sudo'];
  const run = (args: string[]) => execFileSync(sudo[0] ?? args[0]!, sudo.length ? args : args.slice(1), { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  run(['apt-get', 'update', '-qq']);
  run(['apt-get', 'install', '-y', '-qq', pkg]);
}
