// libbpf, for loading and attaching the XDP fast path and reaching its maps, and the layout the
// program and the director share.
#ifndef CFAST_PATH_H
#define CFAST_PATH_H

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include "director_fast_path.h"
#include "director_traffic_generator.h"

/// Routes libbpf's messages into a buffer instead of standard error, emptied first: the
/// director reports why a load failed in its own log line (`director_fast_path_last_message`).
/// Called by the one thread that loads the program, before it loads.
void director_fast_path_capture_libbpf_messages(void);

/// libbpf's warnings since the capture began, joined by " | ", the newest last and the oldest
/// dropped past 4 KiB (empty if none): after a refused load, the verifier's log ends with why.
const char *director_fast_path_last_message(void);

#endif
