#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include "CTLSClient.h"

struct director_tls {
    SSL *ssl;
};

static SSL_CTX *context;
static pthread_once_t context_once = PTHREAD_ONCE_INIT;
static __thread char last_error[256];

static void make_context(void) {
    context = SSL_CTX_new(TLS_client_method());
    if (context == NULL) return;
    SSL_CTX_set_verify(context, SSL_VERIFY_NONE, NULL);
    // A server that closes without close_notify (common, and HTTP/1.0's way to end an answer)
    // ends the answer; it is not an error.
    SSL_CTX_set_options(context, SSL_OP_IGNORE_UNEXPECTED_EOF);
}

static void remember_error(const char *step) {
    unsigned long code = ERR_get_error();
    char reason[200] = "no detail";
    if (code != 0) ERR_error_string_n(code, reason, sizeof reason);
    snprintf(last_error, sizeof last_error, "%s: %s", step, reason);
    ERR_clear_error();
}

const char *director_tls_last_error(void) { return last_error; }

director_tls *director_tls_new(int fd, const char *server_name) {
    pthread_once(&context_once, make_context);
    if (context == NULL) {
        remember_error("SSL_CTX_new");
        return NULL;
    }
    director_tls *tls = calloc(1, sizeof *tls);
    if (tls == NULL) return NULL;
    tls->ssl = SSL_new(context);
    if (tls->ssl == NULL || SSL_set_fd(tls->ssl, fd) != 1) {
        remember_error("SSL_new");
        director_tls_free(tls);
        return NULL;
    }
    // A literal address is never a server name (RFC 6066 §3): no SNI for either family.
    struct in6_addr address;
    if (server_name != NULL && server_name[0] != 0 && inet_pton(AF_INET, server_name, &address) != 1
        && inet_pton(AF_INET6, server_name, &address) != 1) {
        SSL_set_tlsext_host_name(tls->ssl, server_name);
    }
    SSL_set_connect_state(tls->ssl);
    return tls;
}

/// What an OpenSSL call's result `result` means for the caller.
static int step(director_tls *tls, int result, const char *name) {
    switch (SSL_get_error(tls->ssl, result)) {
    case SSL_ERROR_WANT_READ: return DIRECTOR_TLS_WANTS_READ;
    case SSL_ERROR_WANT_WRITE: return DIRECTOR_TLS_WANTS_WRITE;
    case SSL_ERROR_ZERO_RETURN: return 0;
    default:
        remember_error(name);
        return DIRECTOR_TLS_FAILED;
    }
}

int director_tls_handshake(director_tls *tls) {
    ERR_clear_error();
    int result = SSL_do_handshake(tls->ssl);
    return result == 1 ? DIRECTOR_TLS_DONE : step(tls, result, "handshake");
}

long director_tls_write(director_tls *tls, const void *bytes, size_t length) {
    ERR_clear_error();
    size_t written = 0;
    int result = SSL_write_ex(tls->ssl, bytes, length, &written);
    return result == 1 ? (long)written : step(tls, result, "write");
}

long director_tls_read(director_tls *tls, void *bytes, size_t length) {
    ERR_clear_error();
    size_t count = 0;
    int result = SSL_read_ex(tls->ssl, bytes, length, &count);
    return result == 1 ? (long)count : step(tls, result, "read");
}

void director_tls_free(director_tls *tls) {
    if (tls == NULL) return;
    if (tls->ssl != NULL) SSL_free(tls->ssl);
    free(tls);
}
