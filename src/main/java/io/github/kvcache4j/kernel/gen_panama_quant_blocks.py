#!/usr/bin/env python3
"""Writes PanamaQuantBlocks.java: the register-blocked kernels over quantized rows.

Shares its method layout with gen_panama_blocks.py. The Q8 and the Q4 kernels differ only in how a vector of stored values is loaded (PanamaCodes.q8
against PanamaCodes.q4 after one load of packed nibbles); the blocks of FMAs and the stores are
the same. They are written out separately because one kernel that chose its format at run time
passes C2's inlining node budget (it then stops inlining and boxes the vectors); this template
keeps them one piece of source, so an edit is made once. Run from this directory:

    python3 gen_panama_quant_blocks.py
"""

import os

from gen_panama_blocks import method  # the same javadoc and signature layout

HEADS = "abce"  # 'd' is the head dimension
ROWS = 4


def score_fmas(indent):
    """The sixteen FMAs of a quad: query vector of each head at offset o times the rows' k0..k3."""
    lines = []
    for h in HEADS:
        lead = "FloatVector x" if h == "a" else "x"
        lines.append(f"{lead} = FloatVector.fromArray(F, q, q{h} + o);")
        for r in range(ROWS):
            lines.append(f"{h}{r} = x.fma(k{r}, {h}{r});")
    return [indent + line for line in lines]


def quad(fmt, doc):
    body = ["FloatVector a0 = FloatVector.zero(F);"]
    body += [f"FloatVector {h}{r} = a0;" for h in HEADS for r in range(ROWS) if (h, r) != ("a", 0)]
    body.append("for (int base = 0; base < d; base += GROUP) {")
    if fmt == "Q8":
        body.append("    long g = (long) base / GROUP * Q8_GROUP_BYTES;")
        body += [f"    float s{r} = keys.get(F32, r{r} + g + Q8_SCALE);" for r in range(ROWS)]
        body.append("    for (int i = 0; i < GROUP; i += L) {")
        body.append("        long codes = g + Q8_CODES + i;")
        body += [f"        FloatVector k{r} = q8(keys, r{r} + codes, s{r});" for r in range(ROWS)]
        body.append("        int o = base + i;")
    else:
        body.append("    long g = (long) base / GROUP * Q4_GROUP_BYTES;")
        body.append("    // Scale and minimum in one 8-byte load each: fewer segment accesses keep the method")
        body.append("    // inside C2's node budget.")
        body += [f"    long sm{r} = keys.get(SCALE_AND_MIN, r{r} + g + Q4_SCALE);" for r in range(ROWS)]
        body += [f"    float s{r} = Float.intBitsToFloat((int) sm{r});" for r in range(ROWS)]
        body += [f"    float m{r} = Float.intBitsToFloat((int) (sm{r} >>> 32));" for r in range(ROWS)]
        body.append("    for (int i = 0; i < GROUP; i += L) {")
        body.append("        long codes = g + Q4_CODES + i % (GROUP / 2);")
        body.append("        int shift = i < GROUP / 2 ? 0 : 4;")
        body += [f"        FloatVector k{r} = q4(bytes(keys, r{r} + codes), shift, s{r}, m{r});"
                 for r in range(ROWS)]
        body.append("        int o = base + i;")
    body += score_fmas("        ")
    body.append("    }")
    body.append("}")
    for k, h in enumerate(HEADS):
        head = "" if k == 0 else ("PART + " if k == 1 else f"{k} * PART + ")
        for r in range(ROWS):
            row = "" if r == 0 else (" + L" if r == 1 else f" + {r} * L")
            body.append(f"{h}{r}.intoArray(part, {head}at{row});")
    params = ["MemorySegment keys", "long r0", "long r1", "long r2", "long r3", "int d", "float[] q", "int qa",
              "int qb", "int qc", "int qe", "float[] part", "int at"]
    return method(doc, f"quad{fmt}", params, body)


def values(fmt, doc):
    second = "next" if fmt == "Q8" else "hi"
    body = []
    if fmt == "Q8":
        body += ["long group = (long) dim / GROUP * Q8_GROUP_BYTES;",
                 "long scaleAt = group + Q8_SCALE;",
                 "long codesAt = group + Q8_CODES + dim % GROUP;",
                 "int next = dim + L;"]
    else:
        body += ["long group = (long) dim / GROUP * Q4_GROUP_BYTES;",
                 "long codesAt = group + Q4_CODES + dim % GROUP;",
                 "int hi = dim + GROUP / 2;"]
    for h in HEADS:
        body.append(f"FloatVector {h}0 = FloatVector.fromArray(F, out, o{h} + dim);")
        body.append(f"FloatVector {h}1 = FloatVector.fromArray(F, out, o{h} + {second});")
    body.append("for (int r = 0; r < rows; r++) {")
    body.append("    long row = r * rowBytes;")
    if fmt == "Q8":
        body += ["    float s = values.get(F32, row + scaleAt);",
                 "    FloatVector v0 = q8(values, row + codesAt, s);",
                 "    FloatVector v1 = q8(values, row + codesAt + L, s);"]
    else:
        body += ["    long sm = values.get(SCALE_AND_MIN, row + group + Q4_SCALE);",
                 "    float s = Float.intBitsToFloat((int) sm);",
                 "    float m = Float.intBitsToFloat((int) (sm >>> 32));",
                 "    ByteVector packed = bytes(values, row + codesAt);",
                 "    FloatVector v0 = q4(packed, 0, s, m);",
                 "    FloatVector v1 = q4(packed, 4, s, m);"]
    for h in HEADS:
        lead = "FloatVector p" if h == "a" else "p"
        body.append(f"    {lead} = FloatVector.broadcast(F, w[w{h} + r]);")
        body.append(f"    {h}0 = v0.fma(p, {h}0);")
        body.append(f"    {h}1 = v1.fma(p, {h}1);")
    body.append("}")
    for h in HEADS:
        body.append(f"{h}0.intoArray(out, o{h} + dim);")
        body.append(f"{h}1.intoArray(out, o{h} + {second});")
    params = ["MemorySegment values", "int rows", "long rowBytes", "int dim", "float[] w", "int wa", "int wb",
              "int wc", "int we", "float[] out", "int oa", "int ob", "int oc", "int oe"]
    return method(doc, f"values4{fmt}", params, body)


HEADER = """\
// GENERATED by gen_panama_quant_blocks.py from its template; edit the script, not this file.
package io.github.kvcache4j.kernel;

import static io.github.kvcache4j.kernel.PanamaCodes.bytes;
import static io.github.kvcache4j.kernel.PanamaCodes.q4;
import static io.github.kvcache4j.kernel.PanamaCodes.q8;
import static io.github.kvcache4j.kernel.PanamaLanes.F;
import static io.github.kvcache4j.kernel.PanamaLanes.L;
import static io.github.kvcache4j.kernel.PanamaQuantScores.PART;
import static io.github.kvcache4j.kernel.QuantizedLayout.F32;
import static io.github.kvcache4j.kernel.QuantizedLayout.GROUP;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q4_CODES;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q4_GROUP_BYTES;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q4_SCALE;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q8_CODES;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q8_GROUP_BYTES;
import static io.github.kvcache4j.kernel.QuantizedLayout.Q8_SCALE;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;

/**
 * The register-blocked inner kernels of quantized decode attention, four query heads at a time,
 * over stored Q8 and Q4 rows dequantized in registers ({@link PanamaCodes}): the lane-wise dot
 * products of a quad of key rows, which {@link PanamaQuantScores} merges into scores, and the
 * accumulation of a block of value rows into {@code 2L} output dimensions, eight accumulators in
 * registers and per row two dequantized vectors feeding eight FMAs with the weights broadcast
 * from memory. Head offsets may repeat (a batch of fewer than four heads repeats its last head): a
 * repeated head computes and writes the same bits twice. Generated by
 * {@code gen_panama_quant_blocks.py}.
 */
final class PanamaQuantBlocks {

    /**
     * A Q4 group's scale (low word) and minimum (high word), little-endian as
     * {@link QuantizedLayout} stores them ({@code Q4_MIN = Q4_SCALE + 4}).
     */
    static final ValueLayout.OfLong SCALE_AND_MIN = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private PanamaQuantBlocks() {
    }
"""

KERNELS = [
    quad("Q8", [
        "Stores the lane-wise products {@code Σ q_h,i·d_g·c_i} of the Q8 rows at bytes {@code r0..r3} with",
        "the four queries at {@code qa..qe} to {@code part[k·PART + at + r·L]} (head {@code k}, row {@code r}).",
    ]),
    quad("Q4", [
        "{@link #quadQ8} over Q4 rows, {@code Σ q_h,i·fma(d_g, c_i, m_g)}: the {@code L} bytes at {@code j < 16}",
        "of a group hold its elements {@code j} (low nibbles) and {@code j + 16} (high nibbles).",
    ]),
    values("Q8", [
        "{@code out_h[i] += Σ_r w_h[r]·d_r·c_r,i} for the {@code 2L} dimensions {@code i} from",
        "{@code dim} (inside one group) over the {@code rows} Q8 value rows from byte 0 of",
        "{@code values}: weights at {@code wa..we}, outputs at {@code oa..oe}.",
    ]),
    values("Q4", [
        "{@code out_h[i] += Σ_r w_h[r]·fma(d_r, c_r,i, m_r)} for dimensions {@code i} in",
        "{@code [dim, dim + L)} and {@code [dim + 16, dim + 16 + L)} ({@code dim} in the low half of",
        "its group: the low and the high nibbles of the same {@code L} bytes) over the {@code rows} Q4",
        "value rows from byte 0 of {@code values}.",
    ]),
]

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "PanamaQuantBlocks.java"), "w", encoding="utf-8") as f:
        f.write(HEADER + "\n" + "\n\n".join(KERNELS) + "\n}\n")
