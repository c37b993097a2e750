package io.github.kvcache4j;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Objects;

/**
 * Keys, values or queries handed to a cache, as a {@code float[]} or as native memory, read
 * through one interface so that every check and copy is written once. A cache keeps one reusable
 * instance of each kind and points it at the caller's data for the length of a call.
 */
abstract sealed class FloatRows {

    /** Returns the argument's name, for messages. */
    final String name() {
        return name;
    }

    private String name;

    /** Returns the number of floats. */
    abstract long size();

    /** Returns float {@code i}. */
    abstract float get(long i);

    /** Copies floats {@code [from, from + n)} into {@code dst[0..n)}. */
    abstract void copyTo(long from, float[] dst, int n);

    /** Returns the unit in which {@link #size} is stated in messages ("floats" or "bytes"). */
    abstract String describeSize(long floats);

    final FloatRows named(String name) {
        this.name = name;
        return this;
    }

    /** A Java array. */
    static final class OfArray extends FloatRows {
        private float[] a;

        OfArray of(String name, float[] a) {
            this.a = Objects.requireNonNull(a, name);
            named(name);
            return this;
        }

        /** Returns the array, so that a call can reject aliasing. */
        float[] array() {
            return a;
        }

        @Override
        long size() {
            return a.length;
        }

        @Override
        float get(long i) {
            return a[(int) i];
        }

        @Override
        void copyTo(long from, float[] dst, int n) {
            System.arraycopy(a, (int) from, dst, 0, n);
        }

        @Override
        String describeSize(long floats) {
            return floats + " floats";
        }

        /** Drops the reference to the caller's array. */
        void clear() {
            a = null;
        }
    }

    /** Native memory holding floats in native byte order. */
    static final class OfSegment extends FloatRows {
        private static final ValueLayout.OfFloat F32 =
                ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.nativeOrder());

        private MemorySegment s;

        OfSegment of(String name, MemorySegment s) {
            this.s = Objects.requireNonNull(s, name);
            named(name);
            return this;
        }

        @Override
        long size() {
            return s.byteSize() / 4;
        }

        /** Returns whether the segment is a whole number of floats. */
        boolean wholeFloats() {
            return s.byteSize() % 4 == 0;
        }

        /** Returns the segment's size in bytes. */
        long bytes() {
            return s.byteSize();
        }

        @Override
        float get(long i) {
            return s.get(F32, i * 4);
        }

        @Override
        void copyTo(long from, float[] dst, int n) {
            MemorySegment.copy(s, F32, from * 4, dst, 0, n);
        }

        @Override
        String describeSize(long floats) {
            return floats * 4 + " bytes (" + floats + " floats)";
        }

        /** Drops the reference to the caller's segment. */
        void clear() {
            s = null;
        }
    }
}
