package io.github.kvcache4j.policy;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.kvcache4j.EvictionPolicy;
import io.github.kvcache4j.EvictionPolicy.Reason;
import io.github.kvcache4j.EvictionPolicy.Tracker;
import io.github.kvcache4j.Policies;
import io.github.kvcache4j.testutil.Seeds;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * One stray attention report at a far-future query position must not freeze the policies that
 * follow the latest queries (TOVA, SnapKV): the genuine queries after it still decide. The stray
 * query favours the oldest key; the genuine ones give it the least attention, so it must go.
 */
class FarFutureQueryTest {

    private static final long SEED = Seeds.fresh("FarFutureQueryTest");

    /** Weights rising with the slot: slot 0, the oldest token, gets the least. */
    private static float[] rising(int visible, SplittableRandom r) {
        float[] w = new float[visible];
        double sum = 0;
        for (int j = 0; j < visible; j++) {
            w[j] = (float) (j + 1 + r.nextDouble() * 0.5);
            sum += w[j];
        }
        for (int j = 0; j < visible; j++) {
            w[j] /= (float) sum;
        }
        return w;
    }

    @TestFactory
    Stream<DynamicTest> laterQueriesStillCountAfterAFarFutureOne() {
        return Stream.of(Policies.tova(), Policies.snapKv(2, 1)).map(p -> DynamicTest.dynamicTest(p.name(), () -> {
            SplittableRandom r = new SplittableRandom(SEED);
            Tracker t = p.newTracker(new EvictionPolicy.Shape(1, 1, 1, 16));
            FakeBuffer buffer = new FakeBuffer(16);
            for (int pos = 0; pos < 6; pos++) {
                buffer.append(t, pos, 1f);
            }
            float[] stray = new float[6];
            stray[0] = 1f;
            buffer.attend(t, 1_000_000 + r.nextInt(1000), stray, 6, 6);
            for (int pos = 6; pos < 8; pos++) {
                buffer.append(t, pos, 1f);
                buffer.attend(t, pos, rising(pos + 1, r), pos + 1, pos + 1);
            }
            int[] victims = new int[16];
            assertEquals(1, buffer.victims(t, Reason.COMPRESS, 1, victims));
            assertEquals(0, buffer.position(victims[0]),
                    p.name() + ": the stray far-future query still decides, seed " + SEED);
        }));
    }
}
