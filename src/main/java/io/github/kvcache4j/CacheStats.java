package io.github.kvcache4j;

import java.util.Arrays;
import java.util.Objects;

/**
 * A snapshot of a cache's occupancy.
 *
 * @param resident tokens visible to each (layer, kv-head): {@code resident[layer][kvHead]}; a
 *     layer that reads another layer's KV reports its source's tokens
 * @param evicted tokens evicted since creation or the last {@link KvCache#reset()}, summed over
 *     (layer, kv-head) buffers
 * @param residentBytes bytes of stored key and value rows now resident (each stored row counted
 *     once, also when several layers read it)
 * @param reservedBytes bytes reserved off-heap for rows; 0 after {@link KvCache#close()}
 * @param stateBytes bytes of auxiliary state (the LESS residual), 0 without it
 */
public record CacheStats(int[][] resident, long evicted, long residentBytes, long reservedBytes, long stateBytes) {

    /** Copies {@code resident} so the snapshot cannot change. */
    public CacheStats {
        Objects.requireNonNull(resident, "resident");
        int[][] copy = new int[resident.length][];
        for (int i = 0; i < resident.length; i++) {
            copy[i] = resident[i].clone();
        }
        resident = copy;
    }

    /** Returns a copy of the per-(layer, kv-head) resident counts. */
    @Override
    public int[][] resident() {
        int[][] copy = new int[resident.length][];
        for (int i = 0; i < resident.length; i++) {
            copy[i] = resident[i].clone();
        }
        return copy;
    }

    /** Returns the resident tokens of ({@code layer}, {@code kvHead}). */
    public int resident(int layer, int kvHead) {
        return resident[layer][kvHead];
    }

    /** Returns the resident tokens summed over all (layer, kv-head) pairs. */
    public long totalResident() {
        long sum = 0;
        for (int[] layer : resident) {
            for (int r : layer) {
                sum += r;
            }
        }
        return sum;
    }

    /** Compares the resident counts element by element, and every other component. */
    @Override
    public boolean equals(Object o) {
        return o instanceof CacheStats s && Arrays.deepEquals(resident, s.resident) && evicted == s.evicted
                && residentBytes == s.residentBytes && reservedBytes == s.reservedBytes
                && stateBytes == s.stateBytes;
    }

    @Override
    public int hashCode() {
        return Objects.hash(Arrays.deepHashCode(resident), evicted, residentBytes, reservedBytes, stateBytes);
    }

    /**
     * Returns a one-line summary: totals, then the resident tokens per layer (one number when
     * every kv-head of the layer holds the same count, else the per-head counts).
     */
    @Override
    public String toString() {
        StringBuilder b = new StringBuilder("CacheStats[resident=").append(totalResident())
                .append(", evicted=").append(evicted)
                .append(", residentBytes=").append(residentBytes)
                .append(", reservedBytes=").append(reservedBytes)
                .append(", stateBytes=").append(stateBytes)
                .append(", perLayer=[");
        for (int l = 0; l < resident.length; l++) {
            int[] heads = resident[l];
            boolean uniform = Arrays.stream(heads).allMatch(r -> r == heads[0]);
            b.append(l == 0 ? "" : ", ").append(uniform && heads.length > 0 ? Integer.toString(heads[0]) : Arrays.toString(heads));
        }
        return b.append("]]").toString();
    }
}
