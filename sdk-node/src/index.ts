/**
 * poolswitch-node: a client for the PoolSwitch API key pool proxy.
 *
 * @module
 */

export { PoolSwitchProxyClient } from "./client.js";
export { isProxyErrorCode, PROXY_ERROR_CODES, ProxyErrorCode } from "./codes.js";
export type {
  CallerStatus,
  HealthDocument,
  HealthStorage,
  KeyStatus,
  Outage,
  PoolHealth,
  PoolStatus,
  ReplicaStatus,
  StatusDocument,
  StorageHealth,
} from "./endpoints.js";
export {
  errorFromResponse,
  PoolSwitchError,
  ProxyConnectionError,
  ProxyError,
  ProxyTimeoutError,
  UpstreamError,
} from "./errors.js";
export type { ProxyErrorInit, ProxyTimeoutErrorInit, UpstreamErrorInit } from "./errors.js";
export type {
  CallOptions,
  ClientOptions,
  FetchFunction,
  HeaderValues,
  Query,
  QueryValue,
  RandomFunction,
  RequestBody,
  RequestOptions,
} from "./options.js";
export { PoolSwitchResponse } from "./response.js";
export type { ServerSentEvent } from "./sse.js";
export { SSEParser } from "./sse.js";
export { PoolSwitchStream } from "./stream.js";
export type { StreamInfo } from "./stream.js";
export { VERSION } from "./version.js";
export { PoolSwitchClient } from "./embedded/client.js";
export type { EmbeddedRequestOptions } from "./embedded/client.js";
export type { KeyOption, KeyStateName } from "./embedded/keys.js";
export type { PoolLogger } from "./embedded/pool.js";
export type { PoolSwitchClientOptions, ProviderName, SleepFunction } from "./embedded/settings.js";
export type { StrategyName } from "./embedded/strategies.js";
export type { Classifier, Fault, Outcome, StatusRule, Verdict } from "./embedded/verdict.js";
