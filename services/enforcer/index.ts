/**
 * The enforcer service: the one owner of policy state. It parses and compiles
 * TracingPolicies (compiler/), keeps the policy store (loading all or nothing
 * through a SensorPolicyControl), serves the policy methods of the public API,
 * follows a policy directory and the Kubernetes API's TracingPolicy objects, and takes the user-space follow-up actions.
 */
export * from './compiler/index.js';
export { PolicyStore, PolicyStoreError, PolicyInvalidError, GRPC_DOMAIN, STATIC_DOMAIN, type PolicyRef, type PolicyStatus, type PolicyState } from './policy-store.js';
export { policyMethods } from './policy-api.js';
export { watchPolicyDir, type PolicyDirWatch } from './policy-dir.js';
export { watchPolicyCrds, K8S_DOMAIN, type PolicyCrdWatch } from './policy-crds.js';
export { FollowUpActions } from './followup.js';
export { replacePolicies, unloadPolicies, type LoadedText, type Replacement } from './policy-replace.js';
