/**
 * The provider rules the client uses unless told otherwise: the one place that imports the
 * classifier built from the shared provider profiles (classifier.ts).
 *
 * @module
 */

import { createClassifier, remainingQuotaHeaders, verifyHeaders, verifyPath } from "./classifier.js";
import type { ProviderHooks } from "./engine.js";
import type { Settings } from "./settings.js";
import type { Classifier } from "./verdict.js";

/** The classifier of the options' provider, upstream, cooldown and onStatus rules. */
export function defaultClassifier(settings: Settings): Classifier {
  return createClassifier({
    provider: settings.provider,
    upstreamBaseUrl: settings.upstreamBaseUrl,
    cooldownSeconds: settings.cooldownSeconds,
    onStatus: settings.onStatus,
  });
}

/** Verify paths and headers, and the remaining-quota headers, of the provider profiles. */
export const PROVIDER_HOOKS: ProviderHooks = {
  verifyPath,
  verifyHeaders,
  remainingQuotaHeaders,
};
