package io.github.kvcache4j.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kvcache4j.DType;
import io.github.kvcache4j.testutil.Seeds;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class CodecTest {

    @Test
    void f16RoundTripsSpecialValues() {
        float[] specials = {0f, -0f, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 65504f, -65504f,
            0x1p-24f, -0x1p-24f, 0x1p-14f, 0x1.ff8p-15f, 1f, -2.5f};
        for (float f : specials) {
            float back = Codec.roundTrip(f, DType.F16);
            assertEquals(Float.floatToIntBits(f), Float.floatToIntBits(back), "F16 round trip of " + f);
        }
        assertTrue(Float.isNaN(Codec.roundTrip(Float.NaN, DType.F16)));
        assertEquals(Float.POSITIVE_INFINITY, Codec.roundTrip(65520f, DType.F16), "65520 rounds to +Inf");
        assertEquals(65504f, Codec.roundTrip(65519f, DType.F16));
    }

    @Test
    void bf16RoundTripsSpecialValues() {
        float[] specials = {0f, -0f, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 0x1p-133f,
            -0x1p-133f, 0x1.8p-132f, 1f, -3f, 0x1.fep127f};
        for (float f : specials) {
            float back = Codec.roundTrip(f, DType.BF16);
            assertEquals(Float.floatToIntBits(f), Float.floatToIntBits(back), "BF16 round trip of " + f);
        }
        assertTrue(Float.isNaN(Codec.roundTrip(Float.NaN, DType.BF16)));
        assertTrue(Float.isNaN(Codec.roundTrip(Float.intBitsToFloat(0x7f800001), DType.BF16)),
                "a signalling NaN with a low payload stays a NaN");
    }

    @Test
    void bf16RoundsToNearestEven() {
        // 1 + 2^-8 is exactly halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1).
        assertEquals(1f, Codec.roundTrip(1f + 0x1p-8f, DType.BF16));
        // 1 + 3*2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties go to 1 + 2^-6.
        assertEquals(1f + 0x1p-6f, Codec.roundTrip(1f + 3 * 0x1p-8f, DType.BF16));
        assertEquals(1f + 0x1p-7f, Codec.roundTrip(1f + 0x1p-8f + 0x1p-20f, DType.BF16));
        assertEquals(Float.POSITIVE_INFINITY, Codec.roundTrip(Float.MAX_VALUE, DType.BF16));
    }

    @Test
    void randomValuesAreWithinHalfAnUlp() {
        long seed = Seeds.fresh("randomValuesAreWithinHalfAnUlp");
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < 200_000; i++) {
            float f = Float.intBitsToFloat(r.nextInt());
            if (!Float.isFinite(f)) {
                continue;
            }
            float h = Codec.roundTrip(f, DType.F16);
            if (Math.abs(f) < 65504f) {
                double halfUlp = Math.max(Math.ulp(Math.abs(f)) * 0x1p13, 0x1p-24) / 2;
                assertTrue(Math.abs((double) h - f) <= halfUlp, "F16 of " + f + " gave " + h + ", seed " + seed);
            }
            float b = Codec.roundTrip(f, DType.BF16);
            if (Math.abs(f) < 0x1.fep127f) {
                double halfUlp = Math.ulp(Math.abs(f)) * 0x1p16 / 2;
                assertTrue(Math.abs((double) b - f) <= halfUlp, "BF16 of " + f + " gave " + b + ", seed " + seed);
            }
        }
    }

    @Test
    void encodeThenDecodeMatchesScalarRoundTrip() {
        long seed = Seeds.fresh("encodeThenDecodeMatchesScalarRoundTrip");
        SplittableRandom r = new SplittableRandom(seed);
        float[] src = Seeds.uniform(r, 333, 10);
        try (Arena arena = Arena.ofConfined()) {
            for (DType t : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                MemorySegment seg = arena.allocate(src.length * 4L);
                Codec.encode(src, 0, seg, t, 0, src.length);
                float[] back = new float[src.length];
                Codec.decode(seg, t, 0, back, 0, src.length);
                for (int i = 0; i < src.length; i++) {
                    assertEquals(Codec.roundTrip(src[i], t), back[i], t + " element " + i + ", seed " + seed);
                }
            }
        }
    }
}
