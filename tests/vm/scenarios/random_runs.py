# SPDX-License-Identifier: GPL-2.0
"""Randomized differential runs (tests/vm/randomized.py): each one plays a
seeded sequence against virtio_mem, then memplug, on the same kernel;
random_sequence_<seed> for each seed of RANDOM_SEEDS, or RANDOM_COUNT from
RANDOM_FIRST (default: 1 and 2).
"""

import randomized

from .registry import scenario

scenario("random_sequence", memplug_only=True, tags=("random",),
         variants=[(str(seed), {"seed": seed}) for seed in randomized.seeds()]
         )(randomized.random_sequence)
