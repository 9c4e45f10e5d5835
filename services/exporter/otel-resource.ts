/**
 * The OTLP resource, Vigil itself: service.name "vigil" and its version,
 * then what the detectors find, in this order (a later one wins): the host,
 * the container Vigil runs in (from its cgroup), its pod (below), and last
 * OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME. There is no process
 * detector: process.* attributes belong to the watched process, on each record.
 *
 * The pod's attributes come from downward-API variables, which the Helm
 * chart sets from fieldRefs: K8S_POD_NAME (metadata.name), K8S_NAMESPACE_NAME
 * (metadata.namespace), K8S_POD_UID (metadata.uid), K8S_NODE_NAME
 * (spec.nodeName). An unset one adds nothing.
 */
import { getStringFromEnv } from '@opentelemetry/core';
import { containerDetector } from '@opentelemetry/resource-detector-container';
import { defaultResource, envDetector, hostDetector, resourceFromAttributes, type Resource, type ResourceDetector } from '@opentelemetry/resources';
import * as sc from './semconv.js';

const POD_VARIABLES = {
  K8S_POD_NAME: sc.ATTR_K8S_POD_NAME,
  K8S_NAMESPACE_NAME: sc.ATTR_K8S_NAMESPACE_NAME,
  K8S_POD_UID: sc.ATTR_K8S_POD_UID,
  K8S_NODE_NAME: sc.ATTR_K8S_NODE_NAME,
};

export const podDetector: ResourceDetector = {
  detect: () => ({
    attributes: Object.fromEntries(Object.entries(POD_VARIABLES).map(([variable, attribute]) => [attribute, getStringFromEnv(variable)])),
  }),
};

export const RESOURCE_DETECTORS: ResourceDetector[] = [hostDetector, containerDetector, podDetector, envDetector];

/** What the detectors' findings are merged onto. */
export const vigilResource = (version: string): Resource =>
  defaultResource().merge(resourceFromAttributes({ [sc.ATTR_SERVICE_NAME]: 'vigil', [sc.ATTR_SERVICE_VERSION]: version }));
