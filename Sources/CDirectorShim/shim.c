// The shim is header-only; this file exists because SwiftPM needs one source file per C target.
#include "CDirectorShim.h"
