package io.github.kvcache4j.eval;

/**
 * The evaluator against NVIDIA kvpress on austen-recall ({@code kvpress-recall-persuasion.json},
 * and the expected-attention and KeyDiff presses of {@code kvpress-recall-extra.json}).
 */
class KvpressRecallAgreementTest extends KvpressNllAgreement {

    KvpressRecallAgreementTest() {
        super("kvpress-recall-persuasion.json", "kvpress-recall-extra.json", "austen-recall-f16.gguf", 2);
    }
}
