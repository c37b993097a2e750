/**
 * Reference decoder: a GGUF reader ({@link io.github.kvcache4j.model.GgufFile}), a SentencePiece
 * BPE tokenizer ({@link io.github.kvcache4j.model.Tokenizer}), and a Llama forward pass
 * ({@link io.github.kvcache4j.model.LlamaModel}) whose attention runs through a KV cache.
 */
package io.github.kvcache4j.model;
