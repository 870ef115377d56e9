/* yaml_nodes — libyaml document lookups shared by the conformance suites. */
#ifndef TERN_TEST_YAML_NODES_H
#define TERN_TEST_YAML_NODES_H

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

#endif
