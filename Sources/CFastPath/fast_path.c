// libbpf prints through a variadic callback, which Swift cannot implement.
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "CFastPath.h"

static char last_message[1024];

static int capture(enum libbpf_print_level level, const char *format, va_list arguments) {
    if (level == LIBBPF_DEBUG) return 0;
    vsnprintf(last_message, sizeof(last_message), format, arguments);
    size_t length = strlen(last_message);
    while (length > 0 && last_message[length - 1] == '\n') last_message[--length] = 0;
    return 0;
}

void director_fast_path_capture_libbpf_messages(void) {
    libbpf_set_print(capture);
}

const char *director_fast_path_last_message(void) {
    return last_message;
}
