// Kernel test lab: network namespaces wired like a point-to-point CNI node, dual-stack (IPv4 and IPv6),
// echo-server pods, and a probe client. See lab.ts for the topology and the addressing.
export { createLab, withLab, type Lab, type LabOptions, type Pod, type PodSpec, type Where } from './lab.js';
export { requireKernelTestPrereqs } from './prereqs.js';
export { sweepStaleLabs, listNamespaces, NS_PREFIX } from './netns.js';
export { type ProbeResult, type ProbeTarget, type EchoReply } from './probe.js';
export { normaliseIptablesSave, emptyTablesRules, type IptablesFamily, type IptablesTable } from './iptables.js';
export { mirrorIPv6, canonicalIPv6 } from './addresses.js';
export { type ExecResult, type RunOptions } from './run.js';
