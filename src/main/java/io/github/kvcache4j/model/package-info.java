/**
 * Reference decoder: a GGUF reader ({@link io.github.kvcache4j.model.GgufFile}), the SentencePiece
 * and byte-level BPE tokenizers ({@link io.github.kvcache4j.model.Tokenizer}), and a Llama forward pass
 * ({@link io.github.kvcache4j.model.LlamaModel}) whose attention runs through a KV cache.
 */
package io.github.kvcache4j.model;
