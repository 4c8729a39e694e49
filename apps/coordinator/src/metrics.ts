import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Volunteers } from './scheduler/volunteers.ts';

/** Prometheus metrics served at `/metrics`; process CPU comes from the default collectors. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'webpvm_' });
  return {
    registry,
    framesIn: new Counter({ name: 'webpvm_host_frames_in_total', help: 'Frames received from hosts', labelNames: ['type'], registers: [registry] }),
    framesOut: new Counter({ name: 'webpvm_host_frames_out_total', help: 'Frames sent to hosts', labelNames: ['type'], registers: [registry] }),
    badFrames: new Counter({ name: 'webpvm_host_bad_frames_total', help: 'Malformed frames received from hosts', registers: [registry] }),
    refused: new Counter({
      name: 'webpvm_host_refused_total',
      help: 'Host frames dropped and connections refused, by why: log lines past the rate or for tasks not the host\'s, connections past the per-address limit',
      labelNames: ['why'],
      registers: [registry],
    }),
    throttled: new Counter({
      name: 'webpvm_host_throttled_total',
      help: "Times a host's socket or relay lane was left unread for a while: past its bytes per second (WEBPVM_HOST_BYTES_PER_SECOND)",
      registers: [registry],
    }),
    jobsSubmitted: new Counter({ name: 'webpvm_jobs_submitted_total', help: 'Jobs accepted', registers: [registry] }),
    laneFrames: new Counter({ name: 'webpvm_relay_lane_frames_total', help: 'Task messages piped on relay lanes', registers: [registry] }),
    lanesOpen: new Gauge({ name: 'webpvm_relay_lanes_open', help: 'Relay lanes issued and not closed', registers: [registry] }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** Each volunteer's replicated results that agreed with a quorum and that did not, read when scraped. */
export function volunteerMetrics(registry: Registry, volunteers: Volunteers): void {
  new Gauge({
    name: 'webpvm_volunteer_results',
    help: "A volunteer's replicated results, by verdict: validated (agreed with a quorum) or invalid",
    labelNames: ['volunteer', 'verdict'],
    registers: [registry],
    collect() {
      this.reset();
      for (const v of volunteers.all()) {
        this.set({ volunteer: v.volunteerId, verdict: 'validated' }, v.validated);
        this.set({ volunteer: v.volunteerId, verdict: 'invalid' }, v.invalid);
      }
    },
  });
  new Gauge({
    name: 'webpvm_volunteer_trusted',
    help: 'Whether a volunteer is trusted by adaptive replication (1) or not (0)',
    labelNames: ['volunteer'],
    registers: [registry],
    collect() {
      this.reset();
      for (const v of volunteers.all()) this.set({ volunteer: v.volunteerId }, v.trusted ? 1 : 0);
    },
  });
}
