package io.github.kvcache4j;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ReadableByteChannel;
import java.util.Arrays;
import java.util.zip.CRC32C;

/**
 * Reads the sections of a saved cache ({@link CacheFileFormat}) from a channel: never past the
 * section being read, so a channel may carry more after the cache, and never more into memory
 * than the file holds, so a corrupt length or count fails at the end of the data instead of
 * allocating it. Every failure is a {@link CacheFormatException} naming the section.
 */
final class SectionIn {

    private final ReadableByteChannel channel;
    private final ByteBuffer buf;
    private final MemorySegment staging;
    private final ByteBuffer small = ByteBuffer.allocate(CacheFileFormat.SECTION_HEADER_BYTES)
            .order(ByteOrder.LITTLE_ENDIAN);
    private final CRC32C crc = new CRC32C();
    private String section = "header";
    /** Payload bytes of the section not yet read from the channel. */
    private long unread;

    SectionIn(ReadableByteChannel channel) {
        this.channel = channel;
        // direct: a channel reads into a heap buffer through a temporary direct one
        this.buf = ByteBuffer.allocateDirect(CacheFileFormat.IO_BUFFER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        this.staging = MemorySegment.ofBuffer(buf);
        buf.limit(0);
    }

    /** Reads and checks the magic and the version. */
    void header() throws IOException {
        ByteBuffer h = exact(CacheFileFormat.MAGIC.length + Integer.BYTES);
        byte[] magic = new byte[CacheFileFormat.MAGIC.length];
        h.get(magic);
        check(Arrays.equals(magic, CacheFileFormat.MAGIC), "not a saved kvcache4j cache (bad magic)");
        int version = h.getInt();
        check(version == CacheFileFormat.VERSION, "format version " + version + " is not supported (supported: "
                + CacheFileFormat.VERSION + ")");
    }

    /**
     * Starts section {@code name}, which must carry {@code tag} and at most {@code maxLength}
     * payload bytes; returns its length.
     */
    long begin(String name, int tag, long maxLength) throws IOException {
        section = name;
        ByteBuffer h = exact(CacheFileFormat.SECTION_HEADER_BYTES);
        int t = h.getInt();
        long length = h.getLong();
        check(t == tag, "tag " + t + " where section " + name + " (" + tag + ") belongs");
        check(length >= 0 && length <= maxLength, "length " + length + " outside [0, " + maxLength + "]");
        unread = length;
        crc.reset();
        buf.clear().limit(0);
        return length;
    }

    /** Ends the section: everything was read, and the CRC32C matches. */
    void end() throws IOException {
        check(unread == 0 && !buf.hasRemaining(), (unread + buf.remaining()) + " bytes beyond the content");
        int stored = exact(Integer.BYTES).getInt();
        check(stored == (int) crc.getValue(), "CRC32C mismatch");
    }

    /** Returns the payload bytes not read yet. */
    long remaining() {
        return unread + buf.remaining();
    }

    int getInt() throws IOException {
        need(Integer.BYTES);
        return buf.getInt();
    }

    long getLong() throws IOException {
        need(Long.BYTES);
        return buf.getLong();
    }

    float getFloat() throws IOException {
        need(Float.BYTES);
        return buf.getFloat();
    }

    /** Reads a count in {@code [0, max]} of items of {@code bytesEach} bytes that the section still holds. */
    int count(String what, long max, int bytesEach) throws IOException {
        int n = getInt();
        check(n >= 0 && n <= max, what + " " + n + " outside [0, " + max + "]");
        check((long) n * bytesEach <= remaining(), what + " " + n + " needs " + (long) n * bytesEach
                + " bytes, the section holds " + remaining());
        return n;
    }

    /** Reads {@code n} bytes, which the caller has checked the section holds. */
    byte[] getBytes(int n) throws IOException {
        byte[] out = new byte[n];
        for (int off = 0; off < n; ) {
            need(1);
            int k = Math.min(buf.remaining(), n - off);
            buf.get(out, off, k);
            off += k;
        }
        return out;
    }

    /** Reads the rest of the section; memory grows with the bytes that arrive, not with its declared length. */
    byte[] getRest() throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        while (remaining() > 0) {
            need((int) Math.min(remaining(), buf.capacity()));
            byte[] chunk = new byte[buf.remaining()];
            buf.get(chunk);
            out.write(chunk);
        }
        return out.toByteArray();
    }

    /**
     * Reads {@code count} little-endian elements of {@code layout} into {@code dst} at byte
     * {@code offset}, in {@code layout}'s (native) order.
     */
    void getElements(MemorySegment dst, ValueLayout layout, long offset, int count) throws IOException {
        int size = (int) layout.byteSize();
        int chunk = buf.capacity() / size;
        for (int done = 0; done < count; ) {
            int n = Math.min(chunk, count - done);
            need(n * size);
            int at = buf.position();
            MemorySegment.copy(staging, layout.withOrder(ByteOrder.LITTLE_ENDIAN), at, dst, layout,
                    offset + (long) done * size, n);
            buf.position(at + n * size);
            done += n;
        }
    }

    /** Throws a {@link CacheFormatException} naming the section unless {@code ok}. */
    void check(boolean ok, String message) throws CacheFormatException {
        if (!ok) {
            throw new CacheFormatException("section " + section + ": " + message);
        }
    }

    /** Makes {@code n <= IO_BUFFER_BYTES} payload bytes available in {@link #buf}. */
    private void need(int n) throws IOException {
        if (buf.remaining() >= n) {
            return;
        }
        check(remaining() >= n, "ends inside its content (" + remaining() + " bytes left, " + n + " needed)");
        buf.compact();
        while (buf.position() < n) {
            int room = (int) Math.min(buf.capacity() - buf.position(), unread);
            int from = buf.position();
            buf.limit(from + room);
            int got = channel.read(buf);
            check(got >= 0, "the data ends " + unread + " bytes before the section does (truncated)");
            crc.update(buf.slice(from, got));
            unread -= got;
        }
        buf.limit(buf.position()).position(0);
    }

    /** Reads exactly {@code n} bytes outside any payload. */
    private ByteBuffer exact(int n) throws IOException {
        small.clear().limit(n);
        while (small.hasRemaining()) {
            check(channel.read(small) >= 0, "the data ends early (truncated)");
        }
        return small.flip();
    }
}
