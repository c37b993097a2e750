package io.github.kvcache4j.model;

/**
 * Tensor element types of GGUF files (ggml's {@code ggml_type}), with the block layout needed to
 * size a tensor. {@link LlamaModel} reads weights of types F32, F16, BF16, Q4_0, Q4_1, Q5_0,
 * Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS and MXFP4; the others are recognised so
 * that a file holding them can still be read, and a model that uses one fails to load with a
 * message naming the tensor and the type.
 */
public enum GgmlType {
    /** IEEE binary32. */
    F32(0, 1, 4),
    /** IEEE binary16. */
    F16(1, 1, 2),
    /** 4-bit blocks of 32 with an f16 scale. */
    Q4_0(2, 32, 18),
    /** 4-bit blocks of 32 with f16 scale and minimum. */
    Q4_1(3, 32, 20),
    /** 5-bit blocks of 32 with an f16 scale. */
    Q5_0(6, 32, 22),
    /** 5-bit blocks of 32 with f16 scale and minimum. */
    Q5_1(7, 32, 24),
    /** 8-bit blocks of 32: an f16 scale followed by 32 signed bytes. */
    Q8_0(8, 32, 34),
    /** 8-bit blocks of 32 with f16 scale and sum. */
    Q8_1(9, 32, 36),
    /** 2-bit k-quant super-blocks of 256. */
    Q2_K(10, 256, 84),
    /** 3-bit k-quant super-blocks of 256. */
    Q3_K(11, 256, 110),
    /** 4-bit k-quant super-blocks of 256. */
    Q4_K(12, 256, 144),
    /** 5-bit k-quant super-blocks of 256. */
    Q5_K(13, 256, 176),
    /** 6-bit k-quant super-blocks of 256. */
    Q6_K(14, 256, 210),
    /** 8-bit k-quant super-blocks of 256. */
    Q8_K(15, 256, 292),
    /** i-quant, 2.06 bits per weight. */
    IQ2_XXS(16, 256, 66),
    /** i-quant, 2.31 bits per weight. */
    IQ2_XS(17, 256, 74),
    /** i-quant, 3.06 bits per weight. */
    IQ3_XXS(18, 256, 98),
    /** i-quant, 1.56 bits per weight. */
    IQ1_S(19, 256, 50),
    /** non-linear 4-bit blocks of 32. */
    IQ4_NL(20, 32, 18),
    /** i-quant, 3.44 bits per weight. */
    IQ3_S(21, 256, 110),
    /** i-quant, 2.5 bits per weight. */
    IQ2_S(22, 256, 82),
    /** non-linear 4-bit super-blocks of 256. */
    IQ4_XS(23, 256, 136),
    /** signed 8-bit integer. */
    I8(24, 1, 1),
    /** signed 16-bit integer. */
    I16(25, 1, 2),
    /** signed 32-bit integer. */
    I32(26, 1, 4),
    /** signed 64-bit integer. */
    I64(27, 1, 8),
    /** IEEE binary64. */
    F64(28, 1, 8),
    /** i-quant, 1.75 bits per weight. */
    IQ1_M(29, 256, 56),
    /** bfloat16: the upper 16 bits of a binary32. */
    BF16(30, 1, 2),
    /** ternary, 1.69 bits per weight. */
    TQ1_0(34, 256, 54),
    /** ternary, 2.06 bits per weight. */
    TQ2_0(35, 256, 66),
    /** microscaling FP4 blocks of 32. */
    MXFP4(39, 32, 17);

    private static final GgmlType[] BY_ID = new GgmlType[64];

    static {
        for (GgmlType t : values()) {
            BY_ID[t.id] = t;
        }
    }

    private final int id;
    private final int blockSize;
    private final int blockBytes;

    GgmlType(int id, int blockSize, int blockBytes) {
        this.id = id;
        this.blockSize = blockSize;
        this.blockBytes = blockBytes;
    }

    /** Returns the numeric id stored in GGUF tensor infos. */
    public int id() {
        return id;
    }

    /** Returns the number of elements in one block (1 for plain element types). */
    public int blockSize() {
        return blockSize;
    }

    /** Returns the number of bytes one block occupies. */
    public int blockBytes() {
        return blockBytes;
    }

    /**
     * Returns the type with the given GGUF id, or {@code null} when the id is not a known type.
     *
     * @param id the id read from the file
     * @return the type, or {@code null}
     */
    static GgmlType byId(long id) {
        return id >= 0 && id < BY_ID.length ? BY_ID[(int) id] : null;
    }
}
