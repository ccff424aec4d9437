/**
 * One pool's request loop over `fetch`: select a key -> send -> classify -> record -> fail over
 * or answer (the server's `proxy.py` `_attempts`, step for step; what to do next is plan.ts's to
 * decide, this only carries it out).
 *
 * `fetch` undoes gzip/deflate/br itself, so the classifier gets the decoded bytes and the headers
 * without `content-encoding`; a relayed error answer has its decoded, redacted bytes with a
 * `content-length` of their own (and none of the headers that described the old bytes), as the
 * proxy sends it. A 2xx answer keeps the headers fetch gave (the thin client sees the same through
 * the proxy). The request body is kept (a string or bytes) and sent again to the next key.
 *
 * @module
 */

import type { FetchFunction } from "../options.js";
import { poolError } from "./envelope.js";
import { afterAttempt, RELAY, TIMED_OUT, TRY, UNREACHABLE, whenNoKey, type Step } from "./plan.js";
import { Pool } from "./pool.js";
import { Redactor } from "./redact.js";
import { relayHeld, relayStream, responseHeaders, type Answer, type Held } from "./relay.js";
import type { Settings } from "./settings.js";
import {
  Attempt,
  isConnectError,
  isEventStream,
  readEvent,
  readUpTo,
  transportText,
  type Scope,
} from "./transport.js";
import { Confirming, reading, UNKNOWN, Verifier, VERIFY_READ, VERIFY_TIMEOUT, type Reading } from "./verify.js";
import { NETWORK_ERROR, SUCCESS, TIMEOUT, type Classifier, type Verdict } from "./verdict.js";

/** Error bodies are read whole up to this size to be classified and relayed. */
export const BUFFER_LIMIT = 1024 * 1024;
/** A 2xx event stream's first event is held back (up to this much) to see if it is an error. */
export const FIRST_EVENT_LIMIT = 64 * 1024;

/** What the provider rules give the loop besides the classifier (classifier.ts, via defaults.ts). */
export interface ProviderHooks {
  /** The verify path of a profile for a base URL (`auto`), or null. */
  verifyPath(profile: string, upstreamBaseUrl: string): string | null;
  /** Headers every verification sends (Anthropic's `anthropic-version`). */
  verifyHeaders(profile: string): Record<string, string>;
  /** Headers whose number is the key's remaining requests, first found wins. */
  readonly remainingQuotaHeaders: readonly string[];
}

/** One call, ready to send to any key. */
export interface Call {
  readonly method: string;
  /** The path and query to append to the base URL (the caller's own key parameter removed). */
  readonly target: string;
  readonly headers: readonly [string, string][];
  readonly body: string | Uint8Array | ArrayBuffer | URLSearchParams | null;
  /** Read a 2xx body whole (`request()`), or hand it on as a stream (`stream()`). */
  readonly whole: boolean;
}

export class Engine {
  readonly pool: Pool;
  readonly verifier: Verifier;
  readonly classifier: Classifier;
  readonly redactor: Redactor;
  readonly #s: Settings;
  readonly #fetch: FetchFunction;
  readonly #hooks: ProviderHooks;
  readonly #verifyHeaders: [string, string][];
  readonly #authHeader: string | null;
  readonly #querySuffix: string[];
  readonly #keyIds: string[];

  constructor(settings: Settings, classifier: Classifier, hooks: ProviderHooks) {
    this.#s = settings;
    this.#fetch = settings.fetch;
    this.#hooks = hooks;
    this.classifier = classifier;
    this.pool = new Pool(settings.keys, {
      strategy: settings.strategy,
      cooldownSeconds: settings.cooldownSeconds,
      clock: settings.clock,
      rng: settings.rng,
      logger: settings.logger,
    });
    const path = settings.verifyPath === "auto" ? hooks.verifyPath(classifier.profile, settings.upstreamBaseUrl) : settings.verifyPath;
    this.verifier = new Verifier(path, settings.clock);
    this.#verifyHeaders = Object.entries(hooks.verifyHeaders(classifier.profile));
    this.#authHeader = settings.authQueryParam === null ? settings.authHeaderName : null;
    const param = settings.authQueryParam;
    this.#querySuffix = settings.keys.map((k) => (param === null ? "" : `${param}=${encodeURIComponent(k.secret())}`));
    this.#keyIds = settings.keys.map((k) => k.id);
    this.redactor = new Redactor(settings.keys.map((k) => [k.secret(), k.id] as const));
  }

  /** Serve one call: the answer, or a thrown ProxyError / UpstreamError (or the scope's abort). */
  async run(call: Call, scope: Scope): Promise<Answer> {
    const guard = this.pool.guard;
    if (!guard.holds) {
      return this.#attempts(call, scope);
    }
    if (!guard.admit()) {
      throw poolError(
        "upstream_unavailable",
        "the upstream is failing for most keys; requests are held while a probe checks for its recovery",
        guard.retryAfter(),
        0,
      );
    }
    try {
      return await this.#attempts(call, scope);
    } finally {
      guard.probeDone();
    }
  }

  async #attempts(call: Call, scope: Scope): Promise<Answer> {
    const { pool, classifier } = this;
    const s = this.#s;
    const clock = s.clock;
    const start = clock();
    const deadline = start + s.requestTimeoutSeconds;
    const queueDeadline = Math.min(start + s.queueTimeoutSeconds, deadline);
    const tried = new Set<number>();
    let lastAnswer: Held | null = null;
    let lastFailure = "";
    let lastVerdict: Verdict | null = null;
    let confirming: Confirming | null = null;
    let rounds = 0;
    let attempts = 0;
    let step: Step;
    for (;;) {
      const i = pool.select(tried);
      if (i === null) {
        step = whenNoKey({
          last: lastVerdict,
          answered: lastAnswer !== null,
          tried: tried.size > 0,
          attempts,
          retryAttempts: s.retryAttempts,
          rounds,
          now: clock(),
          deadline,
          queueDeadline,
          returnsIn: lastVerdict === null ? pool.retryAfter() : null,
          jitter: s.rng(),
        });
        if (step.action === "backoff") {
          rounds += 1;
          await this.#sleep(step.delay, scope);
          tried.clear();
          continue;
        }
        if (step.action === "queue") {
          await this.#sleep(step.delay, scope); // a key returns then: serve with it
          continue;
        }
        break;
      }
      tried.add(i);
      attempts += 1;
      let remaining = deadline - clock();
      if (s.attemptTimeoutSeconds !== null) {
        remaining = Math.min(remaining, s.attemptTimeoutSeconds);
      }
      const attempt = new Attempt(scope.signal, Math.max(remaining, 0.001) * 1000);
      let verdict: Verdict | null;
      let resp: Response;
      let head: Uint8Array;
      let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
      try {
        const fetchFunction = this.#fetch;
        resp = await fetchFunction(this.#url(call.target, i), {
          method: call.method,
          headers: this.#headers(call.headers, i),
          body: call.body,
          signal: attempt.signal,
          redirect: "manual",
        });
        if (resp.status < 400) {
          if (!isEventStream(resp.headers)) {
            const bytes = call.whole ? new Uint8Array(await resp.arrayBuffer()) : null;
            attempt.done();
            if (confirming !== null) {
              this.#confirmByPeer(confirming);
            }
            this.#recordSuccess(i, resp);
            return this.#answer(resp, i, attempts, bytes, bytes === null ? resp.body : null, attempt);
          }
          reader = resp.body!.getReader();
          const first = await readEvent(reader, FIRST_EVENT_LIMIT);
          head = first.head;
          verdict = classifier.classifyStreamStart(head, decodedHeaders(resp.headers), clock());
          if (verdict === null) {
            if (confirming !== null) {
              this.#confirmByPeer(confirming);
            }
            this.#recordSuccess(i, resp);
            if (call.whole) {
              const rest = first.ended ? { bytes: new Uint8Array(0) } : await readUpTo(reader, Infinity);
              attempt.done();
              return this.#answer(resp, i, attempts, join(head, rest.bytes), null, attempt);
            }
            attempt.stopTimer();
            return this.#answer(resp, i, attempts, null, relayStream(head, first.ended ? null : reader, attempt, () => this.pool.record(i, NETWORK_ERROR)), attempt);
          }
          // an error as the first event of a stream: read the rest (bounded) in case it is relayed
          const rest = first.ended ? { bytes: new Uint8Array(0) } : await readUpTo(reader, BUFFER_LIMIT);
          head = join(head, rest.bytes);
        } else {
          reader = resp.body === null ? null : resp.body.getReader();
          head = reader === null ? new Uint8Array(0) : (await readUpTo(reader, BUFFER_LIMIT)).bytes;
          verdict = classifier.classify(resp.status, decodedHeaders(resp.headers), head, clock());
        }
        attempt.done();
      } catch (error) {
        attempt.done();
        await reader?.cancel().catch(() => undefined);
        if (scope.kind !== undefined) {
          throw error; // the caller aborted or its own timeout fired: the key is not blamed
        }
        const timedOut = attempt.timedOut;
        lastVerdict = timedOut ? TIMEOUT : NETWORK_ERROR;
        lastFailure = transportText(error, timedOut);
        lastAnswer = null;
        const sent = timedOut || !isConnectError(error);
        step = this.#afterAttempt(i, lastVerdict, attempts, call.method, sent, deadline, false);
        if (step === TRY) {
          continue;
        }
        break;
      }
      if (verdict.confirm) {
        // an invalid key, unless the request is at fault: find out
        confirming ??= new Confirming();
        verdict = await this.verifier.confirm(i, verdict, {
          method: call.method,
          path: call.target.split("?")[0]!,
          successes: pool.states[i]!.successes,
          confirming,
          run: () => this.#verify(i, deadline),
        });
      }
      lastVerdict = verdict;
      step = this.#afterAttempt(i, verdict, attempts, call.method, true, deadline, true);
      lastAnswer = { status: resp.status, headers: resp.headers, body: head, key: i };
      lastFailure = "";
      if (step !== TRY) {
        break;
      }
    }

    if (step === RELAY && lastAnswer !== null) {
      return relayHeld(lastAnswer, this.redactor, this.#keyIds[lastAnswer.key]!, attempts, call.whole);
    }
    if (step === TIMED_OUT) {
      throw poolError("upstream_timeout", `the upstream did not answer in time (${attempts} attempt(s))`, null, attempts);
    }
    if (step === UNREACHABLE) {
      throw poolError(
        "upstream_unreachable",
        `the upstream could not be reached (${attempts} attempt(s)): ${lastFailure}`,
        null,
        attempts,
      );
    }
    const wait = pool.retryAfter();
    throw poolError(
      "no_available_keys",
      "every key is cooling down or disabled" + (wait !== null ? `; the first returns in ${wait.toFixed(1)}s` : ""),
      wait === null ? null : Math.max(1, Math.ceil(wait)),
      attempts,
    );
  }

  #url(target: string, i: number): string {
    const base = this.#s.upstreamBaseUrl + target;
    const suffix = this.#querySuffix[i]!;
    return suffix === "" ? base : base + (target.includes("?") ? "&" : "?") + suffix;
  }

  #headers(headers: readonly [string, string][], i: number): [string, string][] {
    const out = headers.slice() as [string, string][];
    if (this.#authHeader !== null) {
      out.push([this.#authHeader, this.pool.keys[i]!.authValue()]);
    }
    return out;
  }

  async #sleep(seconds: number, scope: Scope): Promise<void> {
    const sleep = this.#s.sleep;
    if (sleep === null) {
      await scope.sleep(seconds * 1000);
    } else {
      await sleep(seconds * 1000, scope.signal);
    }
    if (scope.signal?.aborted) {
      throw scope.signal.reason;
    }
  }

  /** Record an unsuccessful attempt; the next step (TRY: another attempt). */
  #afterAttempt(i: number, verdict: Verdict, attempts: number, method: string, sent: boolean, deadline: number, answered: boolean): Step {
    const s = this.#s;
    const step = afterAttempt(verdict, {
      answered,
      attempts,
      retryAttempts: s.retryAttempts,
      method,
      sent,
      retryNonIdempotent: s.retryNonIdempotent,
      now: s.clock(),
      deadline,
    });
    this.pool.record(i, verdict, { failover: step === TRY });
    return step;
  }

  #recordSuccess(i: number, resp: Response): void {
    let remaining: number | null = null;
    for (const name of this.#hooks.remainingQuotaHeaders) {
      const value = resp.headers.get(name);
      if (value !== null && /^\d+$/.test(value)) {
        remaining = Number(value);
        break;
      }
    }
    this.pool.record(i, SUCCESS, { remainingQuota: remaining });
  }

  /** Another key succeeded where one failed with an unconfirmed 401/403: that one is bad. */
  #confirmByPeer(confirming: Confirming): void {
    const i = this.verifier.confirmedByPeer(confirming);
    if (i !== null) {
      this.pool.confirmedInvalid(i, "confirmed: another key succeeded");
    }
  }

  /** GET verifyPath with key `i` (and no caller header): what it says of the key. Never relayed. */
  async #verify(i: number, deadline: number): Promise<Reading> {
    const path = this.verifier.path!;
    const s = this.#s;
    const timeout = Math.max(Math.min(VERIFY_TIMEOUT, deadline - s.clock()), 0.001);
    const headers: [string, string][] = [...this.#verifyHeaders];
    if (this.#authHeader !== null) {
      headers.push([this.#authHeader, this.pool.keys[i]!.authValue()]);
    }
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error("verification timed out")), timeout * 1000);
    let result: Reading = UNKNOWN;
    try {
      const fetchFunction = this.#fetch;
      const resp = await fetchFunction(this.#url(path, i), { method: "GET", headers, signal: controller.signal, redirect: "manual" });
      const body = resp.body === null ? new Uint8Array(0) : (await readUpTo(resp.body.getReader(), VERIFY_READ)).bytes;
      result = reading(this.classifier.classify(resp.status, decodedHeaders(resp.headers), body, s.clock()).outcome);
    } catch {
      result = UNKNOWN;
    } finally {
      clearTimeout(timer);
    }
    s.logger?.info?.(`key ${this.#keyIds[i]} verified with GET ${path}: ${result}`);
    return result;
  }


  #answer(
    resp: Response,
    i: number,
    attempts: number,
    bytes: Uint8Array | null,
    stream: ReadableStream<Uint8Array> | null,
    attempt: Attempt,
  ): Answer {
    if (bytes === null && stream !== null && !isEventStream(resp.headers)) {
      // a 2xx that is not an event stream, handed on as it comes: no attempt timer any longer
      attempt.stopTimer();
    }
    const headers = responseHeaders(resp.headers, this.redactor, this.#keyIds[i]!, attempts, false);
    return { status: resp.status, headers, bytes, stream };
  }
}

/** Headers for the classifier: fetch has already decoded the body, so no `content-encoding`. */
function decodedHeaders(headers: Headers): Headers {
  if (!headers.has("content-encoding")) {
    return headers;
  }
  const out = new Headers(headers);
  out.delete("content-encoding");
  return out;
}

function join(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (b.length === 0) {
    return a;
  }
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
