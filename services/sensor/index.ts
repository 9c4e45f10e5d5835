/**
 * The sensor service: the one owner of the BPF object, its programs, maps and
 * ring buffer on a node. It turns kernel records into Tetragon events on the
 * bus and serves SensorPolicyControl (lib/sensor-control.ts) to the enforcer.
 * What the CLI and end-to-end tests use of it.
 */
export { Sensor, type SensorOptions, type SensorStats } from './sensor.js';
export { openContainerSources, type ContainerSources, type ContainerSourcesOptions } from './containers/sources.js';
