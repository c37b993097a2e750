package io.github.kvcache4j.model;

import io.github.kvcache4j.Allocation;
import io.github.kvcache4j.CacheStats;
import io.github.kvcache4j.KvCache;
import io.github.kvcache4j.KvCacheConfig;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * Plain float64 causal attention over every appended token (no eviction): a {@link KvCache} written
 * from scratch, for checking the decoder independently of the library's cache. Only what the
 * decoder calls is implemented.
 */
final class ReferenceAttention implements KvCache {

    private final KvCacheConfig config;
    private final int[] sources;
    private final int kvHeads;
    private final int heads;
    private final int headDim;
    private final List<List<float[]>> keys = new ArrayList<>();
    private final List<List<float[]>> values = new ArrayList<>();
    private final List<List<Integer>> positions = new ArrayList<>();

    ReferenceAttention(LlamaConfig c) {
        this.config = KvCacheConfig.builder().layers(c.layers()).kvHeads(c.kvHeads()).queryHeads(c.heads())
                .headDim(c.headDim()).kvSourceLayers(c.kvSourceLayers()).capacity(c.contextLength()).build();
        this.sources = c.kvSourceLayers();
        this.kvHeads = c.kvHeads();
        this.heads = c.heads();
        this.headDim = c.headDim();
        for (int l = 0; l < c.layers(); l++) {
            keys.add(new ArrayList<>());
            values.add(new ArrayList<>());
            positions.add(new ArrayList<>());
        }
    }

    @Override
    public KvCacheConfig config() {
        return config;
    }

    @Override
    public void append(int layer, int firstPosition, int tokens, float[] k, float[] v) {
        int row = kvHeads * headDim;
        for (int t = 0; t < tokens; t++) {
            keys.get(layer).add(java.util.Arrays.copyOfRange(k, t * row, (t + 1) * row));
            values.get(layer).add(java.util.Arrays.copyOfRange(v, t * row, (t + 1) * row));
            positions.get(layer).add(firstPosition + t);
        }
    }

    @Override
    public void attend(int layer, int firstPosition, int tokens, float[] q, float[] out) {
        int src = sources[layer];
        List<float[]> ks = keys.get(src);
        List<float[]> vs = values.get(src);
        List<Integer> ps = positions.get(src);
        int group = heads / kvHeads;
        double scale = 1 / Math.sqrt(headDim);
        for (int t = 0; t < tokens; t++) {
            int pos = firstPosition + t;
            for (int h = 0; h < heads; h++) {
                int qo = (t * heads + h) * headDim;
                int ko = (h / group) * headDim;
                double[] scores = new double[ks.size()];
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < ks.size(); j++) {
                    if (ps.get(j) > pos) {
                        scores[j] = Double.NEGATIVE_INFINITY;
                        continue;
                    }
                    double s = 0;
                    for (int i = 0; i < headDim; i++) {
                        s += (double) q[qo + i] * ks.get(j)[ko + i];
                    }
                    scores[j] = s * scale;
                    max = Math.max(max, scores[j]);
                }
                double sum = 0;
                double[] acc = new double[headDim];
                for (int j = 0; j < ks.size(); j++) {
                    if (scores[j] == Double.NEGATIVE_INFINITY) {
                        continue;
                    }
                    double w = Math.exp(scores[j] - max);
                    sum += w;
                    for (int i = 0; i < headDim; i++) {
                        acc[i] += w * vs.get(j)[ko + i];
                    }
                }
                for (int i = 0; i < headDim; i++) {
                    out[qo + i] = (float) (acc[i] / sum);
                }
            }
        }
    }

    @Override
    public void append(int layer, int firstPosition, int tokens, MemorySegment keys, MemorySegment values) {
        throw new UnsupportedOperationException("not used by the decoder");
    }

    @Override
    public void compress(double ratio) {
        throw new UnsupportedOperationException("the reference never evicts");
    }

    @Override
    public void compress(int targetTokens) {
        throw new UnsupportedOperationException("the reference never evicts");
    }

    @Override
    public void compress(double ratio, Allocation allocation) {
        throw new UnsupportedOperationException("the reference never evicts");
    }

    @Override
    public void compressToTokens(long totalTokens, Allocation allocation) {
        throw new UnsupportedOperationException("the reference never evicts");
    }

    @Override
    public void compressToBytes(long bytes, Allocation allocation) {
        throw new UnsupportedOperationException("the reference never evicts");
    }

    @Override
    public void reset() {
        throw new UnsupportedOperationException("not used by the decoder");
    }

    @Override
    public CacheStats stats() {
        throw new UnsupportedOperationException("not used by the decoder");
    }

    @Override
    public int[] positions(int layer, int kvHead) {
        throw new UnsupportedOperationException("not used by the decoder");
    }

    @Override
    public int read(int layer, int kvHead, float[] keys, float[] values) {
        throw new UnsupportedOperationException("not used by the decoder");
    }

    @Override
    public void close() {
    }
}
