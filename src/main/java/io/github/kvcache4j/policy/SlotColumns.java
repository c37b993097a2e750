package io.github.kvcache4j.policy;

import java.io.DataInput;
import java.io.DataOutput;
import java.io.IOException;
import java.util.Arrays;

/**
 * The per-slot arrays a {@link SlotTracker} registers: per column one array per buffer,
 * {@code width} entries a slot, grown with the buffer's resident count (doubling, up to the
 * capacity). The outer arrays are the ones the tracker's subclass holds, so replacing a buffer's
 * array here (growth, a copy for a fork, a restore) is what the subclass sees next.
 */
final class SlotColumns {

    /** The element types of registered per-slot state. */
    enum Kind {
        DOUBLE, FLOAT, INT, LONG;

        Object copy(Object array) {
            return switch (this) {
                case DOUBLE -> ((double[]) array).clone();
                case FLOAT -> ((float[]) array).clone();
                case INT -> ((int[]) array).clone();
                case LONG -> ((long[]) array).clone();
            };
        }

        Object allocate(int length) {
            return switch (this) {
                case DOUBLE -> new double[length];
                case FLOAT -> new float[length];
                case INT -> new int[length];
                case LONG -> new long[length];
            };
        }

        void write(DataOutput out, Object array, int length) throws IOException {
            for (int i = 0; i < length; i++) {
                switch (this) {
                    case DOUBLE -> out.writeDouble(((double[]) array)[i]);
                    case FLOAT -> out.writeFloat(((float[]) array)[i]);
                    case INT -> out.writeInt(((int[]) array)[i]);
                    case LONG -> out.writeLong(((long[]) array)[i]);
                }
            }
        }

        /** Reads {@code length} values into {@code array}; a double or float must be finite. */
        void read(DataInput in, Object array, int length) throws IOException {
            for (int i = 0; i < length; i++) {
                switch (this) {
                    case DOUBLE -> ((double[]) array)[i] = finite(in.readDouble());
                    case FLOAT -> ((float[]) array)[i] = (float) finite(in.readFloat());
                    case INT -> ((int[]) array)[i] = in.readInt();
                    case LONG -> ((long[]) array)[i] = in.readLong();
                }
            }
        }

        private static double finite(double v) throws IOException {
            StateFormat.check(Double.isFinite(v), "per-slot value " + v + " is not finite");
            return v;
        }
    }

    /** Per-slot state of every buffer: {@code arrays[buffer]}, {@code width} entries a slot. */
    private record Column(Object[] arrays, Object zeros, int width, Kind kind) {
    }

    private final int capacity;
    private Column[] columns = new Column[0];
    /** Per buffer: the slots every registered array has room for. */
    private int[] allocated;

    SlotColumns(int buffers, int capacity) {
        this.capacity = capacity;
        this.allocated = new int[buffers];
    }

    /**
     * Registers {@code width} entries of {@code kind} per slot in {@code arrays}, one per buffer;
     * returns {@code arrays}.
     *
     * @throws IllegalArgumentException if {@code width < 1} or {@code capacity * width} exceeds
     *     {@link Integer#MAX_VALUE}
     */
    Object[] register(int width, Kind kind, Object[] arrays) {
        if (width < 1) {
            throw new IllegalArgumentException("width must be >= 1, got " + width);
        }
        if (capacity > Integer.MAX_VALUE / width) {
            throw new IllegalArgumentException("capacity * width must be <= " + Integer.MAX_VALUE + ", got "
                    + capacity + " * " + width);
        }
        for (int b = 0; b < arrays.length; b++) {
            arrays[b] = kind.allocate(allocated[b] * width);
        }
        columns = Arrays.copyOf(columns, columns.length + 1);
        columns[columns.length - 1] = new Column(arrays, kind.allocate(width), width, kind);
        return arrays;
    }

    /** Returns whether {@code other} registered as many columns: it may take this one's arrays. */
    boolean sameLayout(SlotColumns other) {
        return other.columns.length == columns.length;
    }

    /** A token was stored in {@code slot} of {@code buffer}: makes room for it and zeroes its state. */
    void stored(int buffer, int slot) {
        if (slot >= allocated[buffer]) {
            int slots = StateFormat.grow(allocated[buffer], slot + 1, capacity);
            for (Column c : columns) {
                Object grown = c.kind.allocate(slots * c.width);
                System.arraycopy(c.arrays[buffer], 0, grown, 0, allocated[buffer] * c.width);
                c.arrays[buffer] = grown;
            }
            allocated[buffer] = slots;
        }
        for (Column c : columns) {
            System.arraycopy(c.zeros, 0, c.arrays[buffer], slot * c.width, c.width);
        }
    }

    /** Moves the state of slot {@code from} of {@code buffer} to slot {@code to}. */
    void move(int buffer, int from, int to) {
        for (Column c : columns) {
            Object a = c.arrays[buffer];
            System.arraycopy(a, from * c.width, a, to * c.width, c.width);
        }
    }

    /** Drops every array for an empty one (state shared with a fork is replaced, not cleared). */
    void forget() {
        Arrays.fill(allocated, 0);
        for (Column c : columns) {
            Arrays.setAll(c.arrays, b -> c.kind.allocate(0));
        }
    }

    /** Replaces every array by a copy: this tracker's own, no longer shared with a fork. */
    void copyArrays() {
        for (Column c : columns) {
            for (int b = 0; b < c.arrays.length; b++) {
                c.arrays[b] = c.kind.copy(c.arrays[b]);
            }
        }
    }

    /** Hands every array to {@code to}, a fork's columns of the same layout: both then share them. */
    void shareInto(SlotColumns to) {
        to.allocated = allocated.clone();
        for (int i = 0; i < columns.length; i++) {
            System.arraycopy(columns[i].arrays, 0, to.columns[i].arrays, 0, columns[i].arrays.length);
        }
    }

    /** Writes the layout: the number of columns, then each one's type and width. */
    void writeLayout(DataOutput out) throws IOException {
        out.writeInt(columns.length);
        for (Column c : columns) {
            out.writeInt(c.kind.ordinal());
            out.writeInt(c.width);
        }
    }

    /** Writes the resident part of every array, for the resident counts of {@code order}. */
    void writeArrays(DataOutput out, SlotOrder order) throws IOException {
        for (Column c : columns) {
            for (int b = 0; b < allocated.length; b++) {
                c.kind.write(out, c.arrays[b], order.size(b) * c.width);
            }
        }
    }

    /** Checks that the layout {@link #writeLayout} wrote is this one's. */
    void checkLayout(DataInput in) throws IOException {
        StateFormat.check(in.readInt() == columns.length, "the registered per-slot arrays differ");
        for (Column c : columns) {
            StateFormat.check(in.readInt() == c.kind.ordinal() && in.readInt() == c.width,
                    "the registered per-slot arrays differ");
        }
    }

    /**
     * Reads the arrays {@link #writeArrays} wrote, for the resident counts of
     * {@code order}, without changing anything; returns the action that installs them.
     *
     * @throws IOException if a double or float is not finite
     */
    Runnable read(DataInput in, SlotOrder order) throws IOException {
        int[] slots = new int[allocated.length];
        for (int b = 0; b < slots.length; b++) {
            slots[b] = order.size(b) == 0 ? 0 : StateFormat.grow(0, order.size(b), capacity);
        }
        Object[][] arrays = new Object[columns.length][slots.length];
        for (int i = 0; i < columns.length; i++) {
            Column c = columns[i];
            for (int b = 0; b < slots.length; b++) {
                arrays[i][b] = c.kind.allocate(slots[b] * c.width);
                c.kind.read(in, arrays[i][b], order.size(b) * c.width);
            }
        }
        return () -> {
            allocated = slots;
            for (int i = 0; i < columns.length; i++) {
                System.arraycopy(arrays[i], 0, columns[i].arrays, 0, slots.length);
            }
        };
    }
}
