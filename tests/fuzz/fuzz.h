/*
 * fuzz.h - what the project's fuzz harnesses share.
 *
 * Each harness (fuzz_*.c) defines LLVMFuzzerTestOneInput over one parser of network or file
 * input. Built with clang's libFuzzer (configure --enable-fuzzing) it is a coverage-guided
 * fuzzer that `make fuzz` runs; built normally it links replay_main.c and `make check`
 * replays its seed corpus (tests/fuzz/corpus/<harness>/), where every input that once crashed
 * it stays as a regression test.
 */
#ifndef XLEXT_TESTS_FUZZ_H
#define XLEXT_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Silence the project's log (once): a fuzzer's inputs are refused loudly by design. */
void fuzz_quiet(void);

/* A file descriptor that reads data then end of file (a memfd at offset 0), or -1. */
int fuzz_reader(const uint8_t *data, size_t size);

/*
 * A connected socket pair: data is already written into the far end, which is then shut
 * for writing, so *near reads data then end of file and can write back (up to the socket
 * buffer). Returns 0, or -1 (nothing open). Close both.
 */
int fuzz_socket(const uint8_t *data, size_t size, int *near, int *far);

/* A NUL-terminated copy of data (caller frees), or NULL. */
char *fuzz_string(const uint8_t *data, size_t size);

#endif
