import { Api, readProgram } from '../support/api.ts';
import { CoordinatorProcess } from '../support/coordinator.ts';
import { Coturn } from '../support/coturn.ts';
import { expect, test } from '../support/fixtures.ts';
import { openHosts } from '../support/hosts.ts';
import { totalCounters } from '../support/snapshots.ts';

const grid = { n: 96, iterations: 200 };

/**
 * With WEBPVM_ICE_TRANSPORT_POLICY=relay, pages offer no direct ICE candidates at all: as if
 * every pair of tabs stood behind NATs that cannot reach each other. Data channels then open
 * only through the TURN server, coturn from Debian started here (or not at all: the control).
 */
test('tabs with no direct path open data channels through coturn, and jacobi runs over them bit for bit', async ({ browser }) => {
  test.setTimeout(180_000);
  const program = readProgram('examples/jacobi.ts');
  const turn = await Coturn.start();
  const coordinator = await CoordinatorProcess.start({ WEBPVM_ICE_SERVERS: turn.iceServers, WEBPVM_ICE_TRANSPORT_POLICY: 'relay' });
  try {
    const api = new Api(coordinator.url);
    const tabs = await openHosts(browser, coordinator.url, 3, 1);
    const single = await api.submit({ name: 'jacobi-1', program, main: { ...grid, strips: 1 } });
    const split = await api.submit({ name: 'jacobi-3 over turn', program, main: { ...grid, strips: 3 } });
    await api.waitForState(single, 'done');
    await api.waitForState(split, 'done');
    const [one] = (await api.results(single)) as { checksum: string }[];
    const [three] = (await api.results(split)) as { checksum: string }[];
    expect(three!.checksum).toBe(one!.checksum);
    const counters = await totalCounters(tabs);
    expect(counters.channelOut).toBeGreaterThan(0);
    expect(counters.channelIn).toBe(counters.channelOut);
    // lanes ride on links between the job's sandbox frames, which take the same TURN-only path
    expect(counters.laneOut).toBeGreaterThan(0);
    expect(turn.allocations).toBeGreaterThan(0);
  } finally {
    await coordinator.stop();
    await turn.stop();
  }

  // the control: the same policy with no TURN server opens no channel; the job goes through the coordinator
  const blocked = await CoordinatorProcess.start({ WEBPVM_ICE_TRANSPORT_POLICY: 'relay' });
  try {
    const api = new Api(blocked.url);
    const tabs = await openHosts(browser, blocked.url, 3, 1);
    const split = await api.submit({ name: 'jacobi-3 with no path', program, main: { ...grid, strips: 3 } });
    await api.waitForState(split, 'done');
    const counters = await totalCounters(tabs);
    expect(counters.channelOut).toBe(0);
    expect(counters.relayOut).toBeGreaterThan(0);
  } finally {
    await blocked.stop();
  }
});
