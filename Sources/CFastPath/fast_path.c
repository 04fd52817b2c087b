// libbpf prints through a variadic callback, which Swift cannot implement.
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "CFastPath.h"

// libbpf's warnings since the last clear, newest last, the oldest dropped past the size: after a
// refused load they hold the verifier's log, whose end says why.
static char messages[4096];

static int capture(enum libbpf_print_level level, const char *format, va_list arguments) {
    if (level == LIBBPF_DEBUG) return 0;
    char line[1024];
    vsnprintf(line, sizeof(line), format, arguments);
    size_t length = strlen(line);
    while (length > 0 && (line[length - 1] == '\n' || line[length - 1] == ' ')) line[--length] = 0;
    if (length == 0) return 0;
    size_t held = strlen(messages);
    size_t needed = held + length + (held > 0 ? 3 : 0);
    if (needed >= sizeof(messages)) {
        // Keep the tail: drop whole old lines first.
        size_t drop = needed - sizeof(messages) + 1;
        if (drop > held) { held = 0; messages[0] = 0; }
        else { memmove(messages, messages + drop, held - drop + 1); held -= drop; }
    }
    if (held > 0) strcat(messages, " | ");
    strncat(messages, line, sizeof(messages) - strlen(messages) - 1);
    return 0;
}

void director_fast_path_capture_libbpf_messages(void) {
    messages[0] = 0;
    libbpf_set_print(capture);
}

const char *director_fast_path_last_message(void) {
    return messages;
}
