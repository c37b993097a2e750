package io.github.kvcache4j.eval;

/** The evaluator against NVIDIA kvpress on austen-base ({@code kvpress-persuasion.json}). */
class KvpressAgreementTest extends KvpressNllAgreement {

    KvpressAgreementTest() {
        super("kvpress-persuasion.json", "austen-base-f16.gguf");
    }
}
