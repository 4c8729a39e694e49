import type { HostTab } from './hosts.ts';

export interface MessageCounters {
  local: number;
  channelOut: number;
  /** Of channelOut, written by a task's worker on a lane of its own. */
  laneOut: number;
  channelIn: number;
  relayOut: number;
  /** Of relayOut, written by a task's worker on a relay lane of its own. */
  relayLaneOut: number;
  relayIn: number;
  channelsOpen: number;
  resentAfterBreak: number;
  /** Frames refused for coming from a peer the coordinator did not name for their task. */
  forged: number;
}

/** The message counters of several tabs, added up. */
export async function totalCounters(tabs: HostTab[]): Promise<MessageCounters> {
  const all = await Promise.all(
    tabs.map((t) => t.page.evaluate(() => (globalThis as unknown as { __webpvmHost: { snapshot(): { messages: MessageCounters } } }).__webpvmHost.snapshot().messages)),
  );
  const sum = { local: 0, channelOut: 0, laneOut: 0, channelIn: 0, relayOut: 0, relayLaneOut: 0, relayIn: 0, channelsOpen: 0, resentAfterBreak: 0, forged: 0 };
  for (const c of all) for (const key of Object.keys(sum) as (keyof MessageCounters)[]) sum[key] += c[key];
  return sum;
}
