// SPDX-License-Identifier: GPL-2.0
/*
 * memplug - tracepoint definitions (see memplug_trace.h).
 *
 * Copyright (C) memplug developers
 */
#define CREATE_TRACE_POINTS
#include "memplug_trace.h"
