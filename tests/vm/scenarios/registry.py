# SPDX-License-Identifier: GPL-2.0
"""The scenario registry: @scenario, and its variants."""

import functools

SCENARIOS = []

# what @scenario takes besides name and variants; a variant's other keys
# are arguments of the scenario function
OPTIONS = ("memplug_only", "tags", "reference_fails", "reference_long", "newest_kernel")


def scenario(name, memplug_only=False, tags=(), reference_fails=None, reference_long=False,
             newest_kernel=False, variants=None):
    """Register a scenario. memplug_only: skipped for the kernel's driver.
    reference_fails: a known failing of the kernel's own virtio_mem that
    memplug exists to fix; its failure there is reported as TODO, not as a
    failure of the test bed. reference_long: the kernel's driver runs it only
    with LONG=1 (reliability scenarios: they feed the comparison table in
    docs/reliability.md, and keep make check short). newest_kernel: without
    LONG=1, only on the newest test kernel (scenarios about the host side,
    memplugd, whose guests only carry it). Tag "long": only with LONG=1.

    variants: {suffix: {key: value}} (or a list of (suffix, dict) pairs)
    registers one scenario per variant instead, in that order, named
    <name>_<suffix>. A variant's "tags" add to the common tags, its other
    OPTIONS replace the common ones, and every other key is a keyword
    argument of the function: fn(t, **those). both_modes() makes the
    usual pair. The function itself stays as it is, so another scenario
    may call it too."""
    common = {"memplug_only": memplug_only, "tags": tuple(tags),
              "reference_fails": reference_fails, "reference_long": reference_long,
              "newest_kernel": newest_kernel}

    def reg(fn):
        if variants is None:
            add(name, fn, common)
            return fn
        pairs = variants.items() if isinstance(variants, dict) else variants
        for suffix, spec in pairs:
            opts = dict(common)
            kwargs = {}
            for key, value in spec.items():
                if key == "tags":
                    opts["tags"] = common["tags"] + tuple(value)
                elif key in OPTIONS:
                    opts[key] = value
                else:
                    kwargs[key] = value
            add("%s_%s" % (name, suffix), bind(fn, kwargs), opts)
        return fn
    return reg


def add(name, fn, opts):
    SCENARIOS.append({"name": name, "fn": fn, "memplug_only": opts["memplug_only"],
                      "tags": set(opts["tags"]), "reference_fails": opts["reference_fails"],
                      "reference_long": opts["reference_long"],
                      "newest_kernel": opts["newest_kernel"]})


def bind(fn, kwargs):
    """fn(t, **kwargs) as a scenario function f(t), with fn's name and
    docstring (the runner logs the docstring's first line)."""
    @functools.wraps(fn)
    def run(t):
        return fn(t, **kwargs)
    return run


BLOCK = {"sbm": "2M", "bbm": "1G"}


def both_modes(sbm=None, bbm=None):
    """variants= for a scenario run in Sub Block Mode and in Big Block Mode:
    <name>_sbm and <name>_bbm, tagged "sbm" and "bbm", with the function's
    `block` argument 2 MiB and 1 GiB. sbm and bbm: more of that variant's
    options and arguments (a dict, as in scenario()'s variants), block
    among them to use another block size."""
    out = {}
    for mode, spec in (("sbm", sbm), ("bbm", bbm)):
        v = {"block": BLOCK[mode]}
        v.update(spec or {})
        v["tags"] = (mode,) + tuple(v.get("tags", ()))
        out[mode] = v
    return out
