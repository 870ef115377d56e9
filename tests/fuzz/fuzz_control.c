/*
 * libFuzzer: the ternctl command parser (src/queue/control.c). An accepted
 * command is one of the verbs, and an accepted ID is 16 lower-case hex
 * digits: nothing else may reach a spool path.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct control_cmd c;
	const char *why = NULL;
	char *copy;

	if (size > 4096)
		return 0;
	/* An exact-size copy, so ASan catches a read past size. */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	if (size)
		memcpy(copy, data, size);
	if (control_parse(copy, size, &c, &why) == 0) {
		if (c.verb < CTL_HOLD || c.verb > CTL_STATUS)
			abort();
		if (c.verb == CTL_STATUS ? c.id[0] != '\0' :
		    strlen(c.id) != QUEUE_ID_LEN || strspn(c.id, "0123456789abcdef") != QUEUE_ID_LEN)
			abort();
	} else if (why == NULL)
		abort();
	free(copy);
	return 0;
}
