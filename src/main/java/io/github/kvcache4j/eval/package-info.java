/**
 * The evaluator: what each eviction policy costs in quality and saves in KV memory on a real model
 * (continuation NLL under the kvpress protocol, passkey retrieval, copy retrieval), with a table, a
 * CSV file and a plot. Entry point: {@link io.github.kvcache4j.eval.Evaluator}.
 */
package io.github.kvcache4j.eval;
