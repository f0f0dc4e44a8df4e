/*
 * The process-backed node's stand-in for a pod's own network namespace.
 *
 * On a real node each pod has its own interfaces, so a server binds the
 * wildcard address (0.0.0.0) and is reached on the pod's IP. Here every pod
 * shares the host's namespace and has its own loopback address instead, so a
 * wildcard bind would take the port for every pod at once. Preloaded into
 * each container (LD_PRELOAD), this turns an IPv4 wildcard bind into a bind
 * to the pod's address (MODELDEPLOY_DEVCLUSTER_POD_IP); every other bind is
 * passed through untouched.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    static bind_fn real_bind;
    if (real_bind == NULL)
        real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    const char *pod_ip = getenv("MODELDEPLOY_DEVCLUSTER_POD_IP");
    if (pod_ip != NULL && addr != NULL && addr->sa_family == AF_INET &&
        len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in own = *(const struct sockaddr_in *)addr;
        if (own.sin_addr.s_addr == htonl(INADDR_ANY) &&
            inet_pton(AF_INET, pod_ip, &own.sin_addr) == 1)
            return real_bind(fd, (const struct sockaddr *)&own, sizeof own);
    }
    return real_bind(fd, addr, len);
}
