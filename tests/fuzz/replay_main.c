/*
 * replay_main.c - run a fuzz harness over files without libFuzzer: `make check` replays each
 * harness's seed corpus and the inputs that once crashed it (fuzz.h).
 *
 *   fuzz_x FILE|DIR...
 */
#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/fuzz/fuzz.h"

#define REPLAY_MAX_INPUT (4u << 20)

static int replay_file(const char *path)
{
	uint8_t *buf = malloc(REPLAY_MAX_INPUT);
	size_t n;
	FILE *f;

	if (!buf)
		return -1;
	f = fopen(path, "rb");
	if (!f) {
		perror(path);
		free(buf);
		return -1;
	}
	n = fread(buf, 1, REPLAY_MAX_INPUT, f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
	unsigned count = 0;

	for (int i = 1; i < argc; i++) {
		struct dirent **ents;
		struct stat st;
		int n;

		if (stat(argv[i], &st) < 0) {
			perror(argv[i]);
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (replay_file(argv[i]))
				return 1;
			count++;
			continue;
		}
		n = scandir(argv[i], &ents, NULL, by_name);
		if (n < 0) {
			perror(argv[i]);
			return 1;
		}
		for (int j = 0; j < n; j++) {
			char path[4096];

			if (ents[j]->d_name[0] != '.') {
				snprintf(path, sizeof(path), "%s/%s", argv[i], ents[j]->d_name);
				if (replay_file(path))
					return 1;
				count++;
			}
			free(ents[j]);
		}
		free(ents);
	}
	printf("%s: %u inputs replayed, no crash\n", argv[0], count);
	return count ? 0 : 1;
}
