package io.github.kvcache4j;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.WritableByteChannel;
import java.util.zip.CRC32C;

/**
 * Writes the sections of a saved cache ({@link CacheFileFormat}) to a channel through one
 * little-endian staging buffer: each section's tag and length, its payload, then the payload's
 * CRC32C. The CRC is taken over the staged bytes as they are flushed, so rows are copied once.
 */
final class SectionOut {

    private final WritableByteChannel channel;
    private final ByteBuffer buf;
    private final MemorySegment staging;
    private final CRC32C crc = new CRC32C();
    /** Where the payload bytes not yet in the CRC start in {@link #buf}. */
    private int crcFrom;
    private long declared;
    private long written;

    SectionOut(WritableByteChannel channel, int minCapacity) {
        this.channel = channel;
        // direct: a channel writes a heap buffer through a temporary direct copy of it
        this.buf = ByteBuffer.allocateDirect(Math.max(CacheFileFormat.IO_BUFFER_BYTES, minCapacity))
                .order(ByteOrder.LITTLE_ENDIAN);
        this.staging = MemorySegment.ofBuffer(buf);
    }

    /** Writes the file header: magic and version. */
    void header() throws IOException {
        buf.put(CacheFileFormat.MAGIC).putInt(CacheFileFormat.VERSION);
    }

    /** Starts section {@code tag} of {@code length} payload bytes. */
    void begin(int tag, long length) throws IOException {
        room(CacheFileFormat.SECTION_HEADER_BYTES);
        buf.putInt(tag).putLong(length);
        crc.reset();
        crcFrom = buf.position();
        declared = length;
        written = 0;
    }

    /** Ends the section: its CRC32C follows the payload. */
    void end() throws IOException {
        if (written != declared) {
            throw new IllegalStateException("a section declared " + declared + " bytes and wrote " + written);
        }
        crcPending();
        room(Integer.BYTES);
        buf.putInt((int) crc.getValue());
        crcFrom = buf.position();
    }

    void putInt(int v) throws IOException {
        room(Integer.BYTES);
        buf.putInt(v);
        written += Integer.BYTES;
    }

    void putLong(long v) throws IOException {
        room(Long.BYTES);
        buf.putLong(v);
        written += Long.BYTES;
    }

    void putFloat(float v) throws IOException {
        room(Float.BYTES);
        buf.putFloat(v);
        written += Float.BYTES;
    }

    /** Writes {@code bytes[0, length)}. */
    void putBytes(byte[] bytes, int length) throws IOException {
        for (int off = 0; off < length; ) {
            room(1);
            int n = Math.min(buf.remaining(), length - off);
            buf.put(bytes, off, n);
            off += n;
        }
        written += length;
    }

    /**
     * Writes {@code count} elements of {@code layout} (native order) from {@code src} at byte
     * {@code offset} in little-endian order, then {@code zeros} zero elements.
     */
    void putElements(MemorySegment src, ValueLayout layout, long offset, int count, int zeros) throws IOException {
        long bytes = (long) (count + zeros) * layout.byteSize();
        room((int) bytes);
        int at = buf.position();
        MemorySegment.copy(src, layout, offset, staging, layout.withOrder(ByteOrder.LITTLE_ENDIAN), at, count);
        long filled = (long) count * layout.byteSize();
        staging.asSlice(at + filled, bytes - filled).fill((byte) 0);
        buf.position((int) (at + bytes));
        written += bytes;
    }

    /** Writes what is staged to the channel. */
    void flush() throws IOException {
        crcPending();
        buf.flip();
        while (buf.hasRemaining()) {
            channel.write(buf);
        }
        buf.clear();
        crcFrom = 0;
    }

    /** Adds the staged payload bytes not yet in the CRC. */
    private void crcPending() {
        crc.update(buf.slice(crcFrom, buf.position() - crcFrom));
        crcFrom = buf.position();
    }

    private void room(int bytes) throws IOException {
        if (buf.remaining() < bytes) {
            flush();
        }
    }
}
