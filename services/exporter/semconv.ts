/**
 * The OpenTelemetry semantic-convention attribute names the OTLP exporter
 * uses, kept here rather than taken from @opentelemetry/semantic-conventions'
 * unstable entry point (most process.* and k8s.* names are still
 * "development" there and may move between releases).
 */
export const ATTR_PROCESS_PID = 'process.pid';
export const ATTR_PROCESS_PARENT_PID = 'process.parent_pid';
export const ATTR_PROCESS_EXECUTABLE_PATH = 'process.executable.path';
export const ATTR_PROCESS_EXECUTABLE_NAME = 'process.executable.name';
export const ATTR_PROCESS_COMMAND_ARGS = 'process.command_args';
export const ATTR_PROCESS_USER_ID = 'process.user.id';
export const ATTR_PROCESS_WORKING_DIRECTORY = 'process.working_directory';
export const ATTR_PROCESS_EXIT_CODE = 'process.exit.code';
export const ATTR_CONTAINER_ID = 'container.id';
export const ATTR_CONTAINER_NAME = 'container.name';
export const ATTR_CONTAINER_IMAGE_NAME = 'container.image.name';
export const ATTR_K8S_POD_NAME = 'k8s.pod.name';
export const ATTR_K8S_NAMESPACE_NAME = 'k8s.namespace.name';
export const ATTR_K8S_POD_UID = 'k8s.pod.uid';
export const ATTR_K8S_NODE_NAME = 'k8s.node.name';
export const ATTR_SERVICE_NAME = 'service.name';
export const ATTR_SERVICE_VERSION = 'service.version';

/** Vigil's own attributes, for what the conventions have no name for. */
export const ATTR_VIGIL_EXEC_ID = 'vigil.exec_id';
export const ATTR_VIGIL_PARENT_EXEC_ID = 'vigil.parent_exec_id';
export const ATTR_VIGIL_NODE_NAME = 'vigil.node_name';
export const ATTR_VIGIL_POLICY_NAME = 'vigil.policy_name';
export const ATTR_VIGIL_HOOK = 'vigil.hook';
export const ATTR_VIGIL_ACTION = 'vigil.action';
/** False when the policy is in monitor mode and its action was only reported. */
export const ATTR_VIGIL_ACTION_APPLIED = 'vigil.action_applied';
export const ATTR_VIGIL_MESSAGE = 'vigil.message';
export const ATTR_VIGIL_TAGS = 'vigil.tags';
export const ATTR_VIGIL_EXIT_SIGNAL = 'vigil.exit_signal';
