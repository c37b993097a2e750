package io.github.kvcache4j.eval;

/** A command-line option or its value is wrong; the message names the option and the bound. */
final class UsageException extends Exception {

    private static final long serialVersionUID = 1L;

    UsageException(String message) {
        super(message);
    }
}
