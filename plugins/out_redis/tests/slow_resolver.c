/* An LD_PRELOAD getaddrinfo for test_redis_tls.py: a DNS answer that takes as
 * long as the test wants. For the name "slow-redis.test" it creates the file
 * $SLOW_RESOLVER_WAITING (the test's sign that a lookup is blocked), then
 * blocks until the file $SLOW_RESOLVER_GATE exists, then resolves 127.0.0.1.
 * Every other name goes to the real getaddrinfo (dlsym RTLD_NEXT). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *,
                              struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
  getaddrinfo_fn real = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
  if (!real) return EAI_SYSTEM;
  if (node && strcmp(node, "slow-redis.test") == 0) {
    const char *waiting = getenv("SLOW_RESOLVER_WAITING");
    const char *gate = getenv("SLOW_RESOLVER_GATE");
    if (waiting) {
      int fd = open(waiting, O_WRONLY | O_CREAT, 0600);
      if (fd >= 0) close(fd);
    }
    while (gate && access(gate, F_OK) != 0) {
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
    node = "127.0.0.1";
  }
  return real(node, service, hints, res);
}
