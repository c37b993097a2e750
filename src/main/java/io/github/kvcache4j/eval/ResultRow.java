package io.github.kvcache4j.eval;

/**
 * One (policy, ratio) line of the report. Task columns that did not run are {@code NaN}.
 *
 * @param policy the policy name
 * @param ratio the compression ratio (0 for the full cache)
 * @param kept context tokens kept per (layer, kv-head)
 * @param kvBytes resident KV bytes right after compressing the context (mean over windows)
 * @param heldBytes bytes the cache holds in its pool right after compressing the context, blocks of
 *     64 tokens per (layer, kv-head) plus LESS state (mean over windows)
 * @param kvBytesEnd resident KV bytes after the continuation (mean over windows)
 * @param kvBytesPeak the most KV bytes resident at any point of a window (largest over windows)
 * @param nll mean continuation NLL over the windows (nats per token)
 * @param deltaNll {@code nll} minus the full cache's
 * @param top1 fraction of continuation tokens predicted top-1
 * @param windowNll the continuation NLL of each window
 * @param passkey passkey exact-match accuracy
 * @param keyResident mean fraction of (layer, kv-head) buffers that kept a complete copy of the key
 * @param copyNll mean NLL of the repeated span
 * @param copyTop1 top-1 agreement on the repeated span
 * @param spanResident mean fraction of the span's KV entries kept
 * @param tokensPerSecond continuation tokens per second through the model over the compressed cache
 */
record ResultRow(String policy, double ratio, int kept, double kvBytes, double heldBytes, double kvBytesEnd, long kvBytesPeak, double nll,
                 double deltaNll, double top1, double[] windowNll, double passkey, double keyResident,
                 double copyNll, double copyTop1, double spanResident, double tokensPerSecond) {

    /** Returns the perplexity {@code exp(nll)}. */
    double perplexity() {
        return Math.exp(nll);
    }
}
