package io.github.kvcache4j.policy;

import io.github.kvcache4j.EvictionPolicy.Shape;
import io.github.kvcache4j.store.HeapBytes;
import java.io.DataInput;
import java.io.DataInputStream;
import java.io.DataOutput;
import java.io.DataOutputStream;
import java.io.IOException;

/**
 * The shared parts of the built-in trackers' saved state: a header naming the format, the
 * tracker kind and its version and the shape, so that a restore into another policy or shape
 * fails before anything changes; the check every read value passes; and the geometric growth of
 * per-buffer state (it grows with the resident tokens, never beyond the capacity).
 */
final class StateFormat {

    /** Marks saved tracker state ("KVTS"). */
    private static final int MAGIC = 0x4B565453;

    /** Slots a buffer's state holds after its first growth. */
    private static final int FIRST_SLOTS = 16;

    private StateFormat() {
    }

    /** Writes the header of a tracker of {@code kind} at {@code version} serving {@code shape}. */
    static void writeHeader(DataOutput out, String kind, int version, Shape shape) throws IOException {
        out.writeInt(MAGIC);
        out.writeUTF(kind);
        out.writeInt(version);
        out.writeInt(shape.layers());
        out.writeInt(shape.kvHeads());
        out.writeInt(shape.groupSize());
        out.writeInt(shape.capacity());
    }

    /**
     * Reads a header and checks that it is the one {@link #writeHeader} writes for this tracker.
     *
     * @throws IOException if it is not
     */
    static void readHeader(DataInput in, String kind, int version, Shape shape) throws IOException {
        check(in.readInt() == MAGIC, "not saved tracker state (bad magic)");
        String k = in.readUTF();
        check(k.equals(kind), "state of tracker " + k + " cannot be restored into " + kind);
        int v = in.readInt();
        check(v == version, "state version " + v + " of " + kind + " is not supported (supported: " + version + ")");
        Shape s = new Shape(in.readInt(), in.readInt(), in.readInt(), in.readInt());
        check(s.equals(shape), "state saved for " + s + " cannot be restored into " + shape);
    }

    /**
     * Throws an {@link IOException} with {@code message} unless {@code ok}.
     *
     * @throws IOException if {@code !ok}
     */
    static void check(boolean ok, String message) throws IOException {
        if (!ok) {
            throw new IOException("inconsistent tracker state: " + message);
        }
    }

    /** Writes part of a tracker's state. */
    @FunctionalInterface
    interface Saver {
        /** Writes the state to {@code out}. */
        void save(DataOutput out) throws IOException;
    }

    /** Reads part of a tracker's state and returns the action that installs it. */
    @FunctionalInterface
    interface Restorer {
        /** Reads the state from {@code in}. */
        Runnable restore(DataInput in) throws IOException;
    }

    /**
     * Passes what {@code saver} writes to {@code restorer} and returns the restorer's action; a
     * failure means the tracker of class {@code owner} cannot read what it wrote.
     */
    static Runnable transfer(Saver saver, Restorer restorer, String owner) {
        HeapBytes bytes = new HeapBytes();
        try {
            saver.save(new DataOutputStream(bytes));
            return restorer.restore(new DataInputStream(bytes.reader()));
        } catch (IOException e) {
            throw new IllegalStateException(owner + " cannot restore the state it saved", e);
        }
    }

    /** Reads a count in {@code [0, max]}, named {@code what} in the message. */
    static int readCount(DataInput in, int max, String what) throws IOException {
        int n = in.readInt();
        check(n >= 0 && n <= max, what + " " + n + " is outside [0, " + max + "]");
        return n;
    }

    /**
     * Returns the slots to allocate for a buffer holding {@code have} that needs {@code need}:
     * at least double, at most {@code capacity}.
     */
    static int grow(int have, int need, int capacity) {
        return (int) Math.min(capacity, Math.max(need, Math.max(FIRST_SLOTS, 2L * have)));
    }
}
