#ifndef C_TLS_CLIENT_H
#define C_TLS_CLIENT_H

#include <stddef.h>

/// A TLS client session over a connected non-blocking TCP socket, for the https health checks
/// (OpenSSL). The certificate is not verified: a check asks whether the server answers, as
/// keepalived's SSL_GET does by default. Opaque to Swift, so OpenSSL's headers (and its macros,
/// which Swift cannot import) stay in the C file.
typedef struct director_tls director_tls;

/// What a step needs before it can go on.
enum {
    DIRECTOR_TLS_DONE = 1,
    DIRECTOR_TLS_WANTS_READ = -3,
    DIRECTOR_TLS_WANTS_WRITE = -2,
    DIRECTOR_TLS_FAILED = -1,
};

/// A session on `fd` (not owned: the caller closes it), sending `server_name` as SNI when it is
/// not an address. NULL if OpenSSL could not make one.
director_tls *director_tls_new(int fd, const char *server_name);

/// The handshake, resumed: DONE, WANTS_READ, WANTS_WRITE or FAILED.
int director_tls_handshake(director_tls *tls);

/// Writes up to `length` bytes: how many (> 0), or WANTS_READ, WANTS_WRITE, FAILED.
long director_tls_write(director_tls *tls, const void *bytes, size_t length);

/// Reads up to `length` bytes: how many (> 0), 0 at the end of the answer, or WANTS_READ,
/// WANTS_WRITE, FAILED.
long director_tls_read(director_tls *tls, void *bytes, size_t length);

/// Why the last step of this thread failed, in OpenSSL's words.
const char *director_tls_last_error(void);

void director_tls_free(director_tls *tls);

#endif
