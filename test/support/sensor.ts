/** A real sensor on the real kernel, publishing to an in-process bus, for tests. */
import type { EventEnvelope } from '../../services/lib/bus.js';
import { LocalBus } from '../../services/lib/bus.js';
import { Sensor, type SensorOptions } from '../../services/sensor/index.js';

export interface SensorHarness {
  bus: LocalBus;
  sensor: Sensor;
  events: EventEnvelope[];
  /** Events whose process pid is in `pids`. */
  eventsFor(pids: Iterable<number>): EventEnvelope[];
  stop(): void;
}

export function startSensor(nodeName = 'test-node', maxProcesses?: number, options: Partial<SensorOptions> = {}): SensorHarness {
  const bus = new LocalBus((err) => { throw err; });
  const events: EventEnvelope[] = [];
  bus.subscribeEvents((e) => { events.push(e); });
  const sensor = new Sensor(bus, { nodeName, ...(maxProcesses !== undefined && { maxProcesses }), ...options });
  sensor.start();
  return {
    bus, sensor, events,
    eventsFor(pids) {
      const set = new Set(pids);
      return events.filter((e) => {
        const payload = e.event.process_exec ?? e.event.process_exit;
        return payload !== undefined && set.has(payload.process.pid.value);
      });
    },
    stop: () => sensor.stop(),
  };
}
