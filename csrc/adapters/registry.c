/* registry.c: the table of wire protocols, looked up by name. */
#include <string.h>

#include "adapter.h"

static const pf_adapter *const adapters[] = {
  &pf_adapter_apimart,
  NULL,
};

const pf_adapter *pf_adapter_find(const char *name) {
  for (int i = 0; adapters[i]; i++)
    if (strcmp(adapters[i]->name, name) == 0) return adapters[i];
  return NULL;
}
