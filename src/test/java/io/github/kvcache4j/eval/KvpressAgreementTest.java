package io.github.kvcache4j.eval;

/**
 * The evaluator against NVIDIA kvpress on austen-base ({@code kvpress-persuasion.json}): window 0
 * by default, to keep the suite short (the recall model's test checks two windows).
 */
class KvpressAgreementTest extends KvpressNllAgreement {

    KvpressAgreementTest() {
        super("kvpress-persuasion.json", null, "austen-base-f16.gguf", 1);
    }
}
