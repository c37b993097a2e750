/**
 * kvcache4j: off-heap, SIMD key/value cache compression for transformer inference.
 */
module io.github.kvcache4j {
    requires org.slf4j;
    requires static jdk.incubator.vector;
    requires static org.jfree.jfreechart;
    requires static java.desktop;

    exports io.github.kvcache4j;
    exports io.github.kvcache4j.sharing;
    exports io.github.kvcache4j.model;
    exports io.github.kvcache4j.less;
    exports io.github.kvcache4j.policy;
}
