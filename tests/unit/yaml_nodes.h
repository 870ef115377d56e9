/* yaml_nodes — libyaml document lookups shared by the conformance suites. */
#ifndef TERN_TEST_YAML_NODES_H
#define TERN_TEST_YAML_NODES_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* The value of key in a mapping node, or NULL. */
static inline yaml_node_t *
map_get(yaml_document_t *d, yaml_node_t *map, const char *key)
{
	yaml_node_pair_t *p;

	if (map == NULL || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(d, p->key);

		if (k && k->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, key) == 0)
			return yaml_document_get_node(d, p->value);
	}
	return NULL;
}

/* A scalar node's text, or NULL for anything else. */
static inline const char *
scalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/*
 * Calls each(doc, root, arg) for every document of the test data file
 * rel, under $TERN_TESTDATA (default ../shared/testdata); the test fails
 * when the file cannot be read or is not YAML.
 */
static inline void
yaml_each_document(const char *rel, void (*each)(yaml_document_t *, yaml_node_t *, void *),
    void *arg)
{
	const char *dir = getenv("TERN_TESTDATA");
	yaml_parser_t parser;
	yaml_document_t doc;
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir ? dir : "../shared/testdata", rel);
	if ((f = fopen(path, "rb")) == NULL)
		fail_msg("cannot open %s (set TERN_TESTDATA)", path);
	assert_true(yaml_parser_initialize(&parser));
	yaml_parser_set_input_file(&parser, f);
	for (;;) {
		yaml_node_t *root;

		if (!yaml_parser_load(&parser, &doc))
			fail_msg("%s: YAML error: %s", path, parser.problem ? parser.problem : "?");
		if ((root = yaml_document_get_root_node(&doc)) == NULL) {
			yaml_document_delete(&doc);
			break;
		}
		each(&doc, root, arg);
		yaml_document_delete(&doc);
	}
	yaml_parser_delete(&parser);
	fclose(f);
}

#endif
