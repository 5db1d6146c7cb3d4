/**
 * `lifeguard/doctor`: reads the kernel's socket, descriptor and thread tables of a process (Linux), finds
 * CLOSE_WAIT piles, connection and thread growth, descriptors near the limit and, in-process, matches
 * every socket to the pool lease that holds it. See docs/doctor.md.
 */
export { Doctor, diagnose, diagnoseSelf, watch, type DiagnoseOptions, type DiagnoseSelfOptions, type DoctorOptions } from './diagnose.js';
export { DoctorError, DoctorErrorCodes, type DoctorErrorCode } from './errors.js';
export { FindingCodes, SEVERITIES, analyze, resolveThresholds, severityRank, type AnalysisInput, type AnalyzedSocket, type DoctorThresholds, type Finding, type FindingCode, type ResolvedThresholds, type Severity } from './findings.js';
export { collectOwners, describeOwner, ownerOf, type OwnerLease, type PoolResources, type SocketOwner } from './join.js';
export * from './proc.js';
export { buildReport, renderLine, renderText, type DiagnosisReport, type ReportSocket, type Trend } from './report.js';
export { Sampler, series, type Sample, type SeenSocket, type Series, type SocketGroup } from './sampler.js';
export { renderPrometheus } from './prometheus.js';
export { rank, renderHost, surveyHost, type HostOptions, type HostProcess, type HostReport } from './host.js';
export { collectInbound, renderInbound, type InboundServer, type InboundSocket } from './inbound.js';
