import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import '../styles.css';
import { workerClock } from './clock.ts';
import { socketOpens } from './coordinator-failover.ts';
import { coordinatorSocketUrl } from './coordinator-link.ts';
import { parseHostOptions } from './host-options.ts';
import { HostRuntime, type HostSnapshot } from './host-runtime.ts';
import { claimSeat, seatDatabase } from './profile-seat.ts';
import { HostView } from './HostView.tsx';
import { idbStore } from './kv-store.ts';
import { watchBattery, watchMachineIdleness } from './machine-signals.ts';
import { ReclaimMonitor } from './reclaim-monitor.ts';
import { createPeerJsPeer } from './messaging/peerjs-peer.ts';
import { SandboxFrames } from './sandbox-frames.ts';
import { profileVolunteerKey } from './volunteer-key.ts';

declare global {
  /** Read by e2e tests and benchmarks to see what this host is doing. */
  var __webpvmHost: { snapshot(): HostSnapshot } | undefined;
}

const options = parseHostOptions(location.search, navigator.hardwareConcurrency);
const clock = workerClock();
const sandboxes = new SandboxFrames({ clock });
const runtime = new HostRuntime({
  options,
  store: idbStore(seatDatabase(await claimSeat())),
  spawn: sandboxes.spawn,
  links: sandboxes.links,
  createPeer: createPeerJsPeer,
  url: coordinatorSocketUrl(location),
  userAgent: navigator.userAgent,
  volunteerKey: await profileVolunteerKey(),
  clock,
  failover: {
    origin: location.origin,
    reachable: (url) => socketOpens(coordinatorSocketUrl(new URL(url)), clock),
    move: (url) => location.replace(`${url}${location.pathname}${location.search}${location.hash}`),
  },
});
const monitor = new ReclaimMonitor(
  options.policy,
  options.idleMs,
  { window, document, now: () => performance.now() },
  { reclaim: (reason, urgent) => runtime.reclaim(reason, urgent), available: () => runtime.available() },
);
monitor.start();
void watchMachineIdleness((active) => monitor.machineActivity(active));
if (options.minBattery > 0) void watchBattery((level, charging) => monitor.battery(level, charging, options.minBattery));
globalThis.__webpvmHost = { snapshot: () => runtime.snapshot() };
runtime.start().catch((error: unknown) => console.error('webpvm: the host could not start', error));

const root = document.getElementById('root');
if (!root) throw new Error('the page has no #root element');
createRoot(root).render(
  <StrictMode>
    <HostView runtime={runtime} idleMs={options.idleMs} />
  </StrictMode>,
);
