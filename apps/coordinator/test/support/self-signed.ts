import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/**
 * A self-signed certificate for 127.0.0.1 and localhost, made with Debian's openssl (scripts/setup.sh
 * installs it) in `dir`: the PEM files' paths, and the certificate itself for clients to trust.
 */
export function selfSignedCertificate(dir: string): { certFile: string; keyFile: string; cert: string } {
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout', keyFile, '-out', certFile,
  ], { stdio: 'ignore' });
  return { certFile, keyFile, cert: fs.readFileSync(certFile, 'utf8') };
}
