package io.github.kvcache4j.eval;

/** The evaluator against NVIDIA kvpress on austen-recall ({@code kvpress-recall-persuasion.json}). */
class KvpressRecallAgreementTest extends KvpressNllAgreement {

    KvpressRecallAgreementTest() {
        super("kvpress-recall-persuasion.json", "austen-recall-f16.gguf", 2);
    }
}
