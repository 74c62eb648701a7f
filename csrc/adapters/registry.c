/* registry.c: the table of wire protocols, looked up by name. */
#include <string.h>

#include "adapter.h"

const pf_adapter *const pf_adapters[] = {
  &pf_adapter_apimart,
  &pf_adapter_pixverse,
  &pf_adapter_dashscope,
  &pf_adapter_jiekou,
  &pf_adapter_baicai,
  NULL,
};

const pf_adapter *pf_adapter_find(const char *name) {
  for (int i = 0; pf_adapters[i]; i++)
    if (strcmp(pf_adapters[i]->name, name) == 0) return pf_adapters[i];
  return NULL;
}
