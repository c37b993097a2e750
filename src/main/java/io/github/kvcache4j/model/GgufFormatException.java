package io.github.kvcache4j.model;

import java.io.IOException;

/**
 * A GGUF file is malformed: bad magic, unsupported version, a count or length that cannot fit in
 * the bytes that remain, a tensor outside the data section, overlapping tensors or an unknown
 * tensor type. It is an {@link IOException} because it describes the content of a file, not a
 * programming error; the message names the offending field, its value and the bound it broke.
 */
public final class GgufFormatException extends IOException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param message the field, its value and the violated bound
     */
    public GgufFormatException(String message) {
        super(message);
    }
}
