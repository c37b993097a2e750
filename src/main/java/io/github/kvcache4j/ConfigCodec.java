package io.github.kvcache4j;

import io.github.kvcache4j.less.FeatureMap;
import io.github.kvcache4j.policy.CormPolicy;
import io.github.kvcache4j.policy.ExpectedAttentionPolicy;
import io.github.kvcache4j.policy.FullPolicy;
import io.github.kvcache4j.policy.H2oPolicy;
import io.github.kvcache4j.policy.KeyDiffPolicy;
import io.github.kvcache4j.policy.KnormPolicy;
import io.github.kvcache4j.policy.Rope;
import io.github.kvcache4j.policy.SnapKvPolicy;
import io.github.kvcache4j.policy.StreamingLlmPolicy;
import io.github.kvcache4j.policy.TovaPolicy;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.OptionalLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The CONFIG section of a saved cache: the dimensions, storage type, key rotation, pool
 * exhaustion, sharing plan, the policy as a kind with integer and real parameters (enough to
 * rebuild a built-in policy), and the LESS feature map. {@link Saved} is what a file holds; a caller's config is
 * compared against it field by field.
 */
final class ConfigCodec {

    /** Most real parameters of a policy: expected attention's epsilon and one RoPE frequency per pair. */
    static final int MAX_REALS = 1 + 4096;

    /** The kind of a policy that is not built in: it is known by its name only. */
    static final String USER = "user";
    /** The LESS kinds: none, positive random features (rebuilt from rank and seed), another map (by name). */
    static final String NO_MAP = "none";
    static final String FAVOR = "favor+";
    static final String OTHER_MAP = "map";
    private static final Pattern FAVOR_NAME = Pattern.compile("favor\\+\\(rank=(\\d+), seed=(-?\\d+)\\)");

    private ConfigCodec() {
    }

    /**
     * The configuration a file holds (an executor is never saved); {@code rotation} is 1 with
     * the key rotation's seed in {@code rotationSeed}, else 0 with seed 0.
     */
    record Saved(int layers, int kvHeads, int queryHeads, int headDim, int capacity, String dtype, int rotation,
                 long rotationSeed, int exhaustion, int[] sources, String policyKind, String policyName, int[] ints,
                 double[] reals, String lessKind, String lessName, int lessRank, long lessSeed) {

        /** Returns the first field in which {@code o} differs, or null when none does. */
        String difference(Saved o) {
            String[] names = {"layers", "kvHeads", "queryHeads", "headDim", "capacity", "dtype", "keyRotation",
                "keyRotation seed", "poolExhaustion", "kvSourceLayers", "policy", "policy", "policy parameters",
                "policy parameters", "less", "less", "less rank", "less seed"};
            Object[] a = {layers, kvHeads, queryHeads, headDim, capacity, dtype, rotation, rotationSeed, exhaustion,
                sources, policyKind, policyName, ints, reals, lessKind, lessName, lessRank, lessSeed};
            Object[] b = {o.layers, o.kvHeads, o.queryHeads, o.headDim, o.capacity, o.dtype, o.rotation,
                o.rotationSeed, o.exhaustion, o.sources, o.policyKind, o.policyName, o.ints, o.reals, o.lessKind,
                o.lessName, o.lessRank, o.lessSeed};
            for (int i = 0; i < a.length; i++) {
                if (!Arrays.deepEquals(new Object[] {a[i]}, new Object[] {b[i]})) {
                    return names[i] + ": the file holds " + text(a[i]) + ", the config " + text(b[i]);
                }
            }
            return null;
        }

        private static String text(Object v) {
            return v instanceof int[] i ? Arrays.toString(i) : v instanceof double[] d ? Arrays.toString(d) : String.valueOf(v);
        }
    }

    /** Returns what a file of a cache with {@code config} holds. */
    static Saved describe(KvCacheConfig config) {
        EvictionPolicy p = config.policy();
        String kind;
        int[] ints = {};
        double[] reals = {};
        switch (p) {
            case FullPolicy f -> kind = "full";
            case StreamingLlmPolicy s -> {
                kind = "streaming_llm";
                ints = new int[] {s.sinks()};
            }
            case KnormPolicy k -> {
                kind = "knorm";
                int[] skip = k.skipLayers();
                ints = new int[skip.length + 1];
                ints[0] = k.pruneAfter();
                System.arraycopy(skip, 0, ints, 1, skip.length);
            }
            case CormPolicy c -> {
                kind = "corm";
                ints = new int[] {c.window(), c.recent(), c.hardCapacity() ? 1 : 0};
                reals = new double[] {c.alpha()};
            }
            case H2oPolicy h -> {
                kind = "h2o";
                ints = new int[] {h.perQuery() ? 1 : 0};
                reals = new double[] {h.recentFraction()};
            }
            case SnapKvPolicy s -> {
                kind = "snapkv";
                ints = new int[] {s.window(), s.kernel()};
            }
            case TovaPolicy t -> kind = "tova";
            case KeyDiffPolicy k -> kind = "keydiff";
            case ExpectedAttentionPolicy e -> {
                kind = "expected_attention";
                Rope rope = e.rope();
                ints = new int[] {e.futurePositions(), e.sinks(), e.covariance() ? 1 : 0, e.valueNorms() ? 1 : 0,
                    rope.neox() ? 1 : 0};
                reals = new double[1 + rope.pairs()];
                reals[0] = e.epsilon();
                for (int i = 0; i < rope.pairs(); i++) {
                    reals[1 + i] = rope.frequency(i);
                }
            }
            default -> kind = USER;
        }
        FeatureMap map = config.less();
        String lessKind = NO_MAP;
        String lessName = "";
        int rank = 0;
        long seed = 0;
        if (map != null) {
            lessName = map.name();
            rank = map.rank();
            Matcher m = FAVOR_NAME.matcher(lessName);
            lessKind = OTHER_MAP;
            if (m.matches() && rebuildsFavor(map, Long.parseLong(m.group(2)))) {
                lessKind = FAVOR;
                seed = Long.parseLong(m.group(2));
            }
        }
        OptionalLong rotation = config.keyRotationSeed();
        return new Saved(config.layers(), config.kvHeads(), config.queryHeads(), config.headDim(), config.capacity(),
                config.dtype().name(), rotation.isPresent() ? 1 : 0, rotation.orElse(0),
                config.poolExhaustion().ordinal(), config.kvSourceLayers(), kind, p.name(), ints, reals, lessKind,
                lessName, rank, seed);
    }

    /** Whether {@code map} is the positive-random map of its rank and {@code seed}: then a load can rebuild it. */
    private static boolean rebuildsFavor(FeatureMap map, long seed) {
        FeatureMap again = FeatureMap.positiveRandom(map.headDim(), map.rank(), seed);
        return again.getClass() == map.getClass() && again.name().equals(map.name());
    }

    /** Writes the CONFIG payload of {@code s}. */
    static void write(SectionOut out, Saved s) throws IOException {
        for (int v : new int[] {s.layers, s.kvHeads, s.queryHeads, s.headDim, s.capacity}) {
            out.putInt(v);
        }
        putName(out, s.dtype);
        out.putInt(s.rotation);
        out.putLong(s.rotationSeed);
        out.putInt(s.exhaustion);
        putInts(out, s.sources);
        putName(out, s.policyKind);
        putName(out, s.policyName);
        putInts(out, s.ints);
        out.putInt(s.reals.length);
        for (double r : s.reals) {
            out.putLong(Double.doubleToRawLongBits(r));
        }
        putName(out, s.lessKind);
        putName(out, s.lessName);
        out.putInt(s.lessRank);
        out.putLong(s.lessSeed);
    }

    /** Returns the CONFIG payload bytes of {@code s}. */
    static long bytes(Saved s) {
        return 5L * Integer.BYTES + nameBytes(s.dtype) + Integer.BYTES + Long.BYTES + Integer.BYTES + Integer.BYTES
                + 4L * s.sources.length + nameBytes(s.policyKind) + nameBytes(s.policyName) + Integer.BYTES
                + 4L * s.ints.length + Integer.BYTES + 8L * s.reals.length + nameBytes(s.lessKind)
                + nameBytes(s.lessName) + Integer.BYTES + Long.BYTES;
    }

    /** Reads a CONFIG payload; the caller ends the section (its CRC) before using it. */
    static Saved read(SectionIn in) throws IOException {
        int[] dims = new int[5];
        for (int i = 0; i < dims.length; i++) {
            dims[i] = in.getInt();
        }
        String dtype = getName(in);
        int rotation = in.getInt();
        long rotationSeed = in.getLong();
        int exhaustion = in.getInt();
        int[] sources = getInts(in, "kvSourceLayers entries");
        String kind = getName(in);
        String name = getName(in);
        int[] ints = getInts(in, "policy integer parameters");
        double[] reals = new double[in.count("policy real parameters", MAX_REALS, Long.BYTES)];
        for (int i = 0; i < reals.length; i++) {
            reals[i] = Double.longBitsToDouble(in.getLong());
        }
        return new Saved(dims[0], dims[1], dims[2], dims[3], dims[4], dtype, rotation, rotationSeed, exhaustion,
                sources, kind, name, ints, reals, getName(in), getName(in), in.getInt(), in.getLong());
    }

    /**
     * Rebuilds the configuration of {@code s}: a built-in policy from its parameters, the key
     * rotation from its seed, a positive-random LESS map from its rank and seed.
     *
     * @throws CacheFormatException if a field is out of range, or the policy or map can only come
     *     from the caller
     */
    static KvCacheConfig rebuild(Saved s) throws CacheFormatException {
        try {
            DType dtype = DType.valueOf(s.dtype);
            KvPool.Exhaustion[] modes = KvPool.Exhaustion.values();
            if (s.exhaustion < 0 || s.exhaustion >= modes.length) {
                throw new IllegalArgumentException("poolExhaustion code " + s.exhaustion + " outside [0, "
                        + modes.length + ")");
            }
            KvCacheConfig.Builder b = KvCacheConfig.builder().layers(s.layers).kvHeads(s.kvHeads)
                    .queryHeads(s.queryHeads).headDim(s.headDim).capacity(s.capacity).dtype(dtype)
                    .poolExhaustion(modes[s.exhaustion]).kvSourceLayers(s.sources).policy(policy(s));
            if (flag(s.rotation, "keyRotation")) {
                b.keyRotation(s.rotationSeed);
            }
            switch (s.lessKind) {
                case NO_MAP -> { }
                case FAVOR -> {
                    // the map and the residual grow with rank x headDim: bound them before the map is drawn
                    double bytes = (double) s.lessRank * s.headDim * Float.BYTES * ((double) s.layers * s.kvHeads + 1);
                    if (s.lessRank < 1 || s.headDim < 1 || bytes > CacheFileFormat.maxLoadBytes()) {
                        throw new IllegalArgumentException("LESS rank " + s.lessRank + " with headDim " + s.headDim
                                + " is below 1 or needs about " + (long) bytes + " bytes, more than "
                                + CacheFileFormat.MAX_BYTES_PROPERTY + " (" + CacheFileFormat.maxLoadBytes() + ")");
                    }
                    b.less(FeatureMap.positiveRandom(s.headDim, s.lessRank, s.lessSeed));
                }
                default -> throw new IllegalArgumentException("LESS map " + s.lessName
                        + " cannot be rebuilt from the file: pass the config to load");
            }
            KvCacheConfig config = b.build();
            String differs = s.difference(describe(config));
            if (differs != null) {
                throw new IllegalArgumentException("the rebuilt configuration differs in " + differs);
            }
            return config;
        } catch (IllegalArgumentException | ArithmeticException e) {
            throw new CacheFormatException("section CONFIG: " + e.getMessage(), e);
        }
    }

    private static EvictionPolicy policy(Saved s) {
        int[] p = s.ints;
        double[] r = s.reals;
        switch (s.policyKind) {
            case "full" -> {
                params(s, 0, 0);
                return Policies.full();
            }
            case "streaming_llm" -> {
                params(s, 1, 0);
                return Policies.streamingLlm(p[0]);
            }
            case "knorm" -> {
                params(s, Math.max(1, p.length), 0);
                return Policies.knorm(p[0], Arrays.copyOfRange(p, 1, p.length));
            }
            case "corm" -> {
                params(s, 3, 1);
                return Policies.corm(p[0], p[1], r[0], flag(p[2], "corm hardCapacity"));
            }
            case "h2o" -> {
                params(s, 1, 1);
                return new H2oPolicy(r[0], flag(p[0], "h2o perQuery"));
            }
            case "snapkv" -> {
                params(s, 2, 0);
                return Policies.snapKv(p[0], p[1]);
            }
            case "tova" -> {
                params(s, 0, 0);
                return Policies.tova();
            }
            case "keydiff" -> {
                params(s, 0, 0);
                return Policies.keyDiff();
            }
            case "expected_attention" -> {
                // epsilon, then one RoPE frequency per pair: at least one
                params(s, 5, r.length);
                if (r.length < 2) {
                    throw new IllegalArgumentException("policy expected_attention has " + r.length
                            + " real parameters, expected epsilon and at least one RoPE frequency");
                }
                Rope rope = Rope.ofFrequencies(Arrays.copyOfRange(r, 1, r.length), flag(p[4], "expected_attention neox"));
                return Policies.expectedAttention(rope, p[0], p[1], flag(p[2], "expected_attention covariance"),
                        flag(p[3], "expected_attention valueNorms"), r[0]);
            }
            case USER -> throw new IllegalArgumentException("policy " + s.policyName
                    + " is not built in: pass the config (with the policy) to load");
            default -> throw new IllegalArgumentException("unknown policy kind " + s.policyKind);
        }
    }

    /** Checks that {@code s} has {@code ints} integer and {@code reals} real parameters. */
    private static void params(Saved s, int ints, int reals) {
        if (s.ints.length != ints || s.reals.length != reals) {
            throw new IllegalArgumentException("policy " + s.policyKind + " has " + s.ints.length + " integer and "
                    + s.reals.length + " real parameters, expected " + ints + " and " + reals);
        }
    }

    private static boolean flag(int v, String name) {
        if (v != 0 && v != 1) {
            throw new IllegalArgumentException(name + " flag must be 0 or 1, got " + v);
        }
        return v == 1;
    }

    private static void putName(SectionOut out, String s) throws IOException {
        byte[] bytes = s.getBytes(StandardCharsets.UTF_8);
        if (bytes.length > CacheFileFormat.MAX_NAME_BYTES) {
            throw new IllegalArgumentException("name " + s + " is longer than " + CacheFileFormat.MAX_NAME_BYTES
                    + " bytes");
        }
        out.putInt(bytes.length);
        out.putBytes(bytes, bytes.length);
    }

    private static long nameBytes(String s) {
        return Integer.BYTES + s.getBytes(StandardCharsets.UTF_8).length;
    }

    private static String getName(SectionIn in) throws IOException {
        return new String(in.getBytes(in.count("name bytes", CacheFileFormat.MAX_NAME_BYTES, 1)),
                StandardCharsets.UTF_8);
    }

    private static void putInts(SectionOut out, int[] v) throws IOException {
        out.putInt(v.length);
        for (int x : v) {
            out.putInt(x);
        }
    }

    private static int[] getInts(SectionIn in, String what) throws IOException {
        int[] v = new int[in.count(what, Integer.MAX_VALUE - 8, Integer.BYTES)];
        for (int i = 0; i < v.length; i++) {
            v[i] = in.getInt();
        }
        return v;
    }
}
