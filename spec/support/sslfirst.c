/* sslfirst.c: an LD_PRELOAD for exit_spec: OpenSSL initialised before pixflow, with its atexit cleanup, as a host that uses OpenSSL itself would. */
#include <openssl/crypto.h>

__attribute__((constructor)) static void sslfirst(void) {
  OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL);   /* 0 would do nothing at all */
}
