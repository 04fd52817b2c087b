// Header-only: this file exists because a C target needs one source.
#include "CPrefetch.h"
