package io.github.kvcache4j.store;

import java.io.InputStream;
import java.io.OutputStream;
import java.util.Arrays;

/**
 * A growable byte array written as an {@link OutputStream} and read back as an
 * {@link InputStream}, without the locks of {@link java.io.ByteArrayOutputStream} and
 * {@link java.io.ByteArrayInputStream}: a tracker's state of a few hundred thousand slots is
 * written and read one value at a time, and a lock per value would dominate a fork or a save.
 */
public final class HeapBytes extends OutputStream {

    private byte[] data = new byte[1 << 12];
    private int size;

    /** Creates an empty array. */
    public HeapBytes() {
    }

    @Override
    public void write(int b) {
        room(1);
        data[size++] = (byte) b;
    }

    @Override
    public void write(byte[] b, int off, int len) {
        room(len);
        System.arraycopy(b, off, data, size, len);
        size += len;
    }

    private void room(int n) {
        if (size + n > data.length) {
            data = Arrays.copyOf(data, Math.max(size + n, 2 * data.length));
        }
    }

    /** Returns the bytes written, {@code [0, size())} of the array (not a copy). */
    public byte[] array() {
        return data;
    }

    /** Returns the number of bytes written. */
    public int size() {
        return size;
    }

    /** Returns a stream reading what was written so far. */
    public InputStream reader() {
        return reader(data, size);
    }

    /** Returns a stream reading {@code bytes[0, length)}, without locks. */
    public static InputStream reader(byte[] bytes, int length) {
        return new InputStream() {
            private int at;

            @Override
            public int read() {
                return at < length ? bytes[at++] & 0xFF : -1;
            }

            @Override
            public int read(byte[] b, int off, int len) {
                if (len == 0) {
                    return 0;
                }
                if (at >= length) {
                    return -1;
                }
                int n = Math.min(len, length - at);
                System.arraycopy(bytes, at, b, off, n);
                at += n;
                return n;
            }

            @Override
            public int available() {
                return length - at;
            }
        };
    }
}
