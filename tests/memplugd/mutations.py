#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Proof that memplugd's tests can fail: each mutation breaks one rule or
bound of tools/memplugd, builds, runs the unit tests and integration
scenarios meant to catch it, prints what they said, and restores the file
(also on Ctrl-C).  Every line must say FAILS at least once.  The
libvirt ones need memplugd built with libvirt.

Usage: tests/memplugd/mutations.py [MUTATION...]   (about 5 minutes for all)
Not part of make check: it edits the sources in place while it runs.
"""
import os
import subprocess
import sys

WT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
M = [
 # (id, file, old, new, unit tests, scenarios)
 ("align", "tools/memplugd/policy.c", "step = max_u64(pol_align_up(step, b), b);", "step = max_u64(step, b);", ["policy"], ["pressure"]),
 ("maxclamp", "tools/memplugd/policy.c", "o->to = min_u64(hi, pol_sat_add(r, step));", "o->to = pol_sat_add(r, step);", ["policy"], ["pressure"]),
 ("psihold", "tools/memplugd/policy.c", "int psi_due = psi_p && now - vm->st.last_psi_grow_ms >= p->psi_hold_ms;", "int psi_due = psi_p;", ["policy"], ["pressure"]),
 ("holddown", "tools/memplugd/policy.c", "if (now - vm->st.last_grow_ms < p->hold_down_ms) {", "if (0) {", ["policy"], ["idle", "restart"]),
 ("restart-init", "tools/memplugd/policy.c", "st->last_grow_ms = now;\n\tst->last_psi_grow_ms = now;", "st->last_grow_ms = POL_NEVER + 0 * now;\n\tst->last_psi_grow_ms = POL_NEVER;", ["policy"], ["restart"]),
 ("maxstep", "tools/memplugd/policy.c", "amount = min_u64(min_u64(percent_of(excess, p->shrink_ratio), p->shrink_max_step),", "amount = min_u64(min_u64(percent_of(excess, p->shrink_ratio), UINT64_MAX),", ["policy"], ["idle", "absurd"]),
 ("min", "tools/memplugd/policy.c", "o->to = max_u64(lo, r - min_u64(amount, r));", "o->to = r - min_u64(amount, r);", ["policy"], ["idle", "absurd"]),
 ("stale", "tools/memplugd/policy.c", "	if (!fresh) {\n\t\tkeep(o, VS_FROZEN);\n\t\tsay(o, \"no report for \"", "	if (0) {\n\t\tkeep(o, VS_FROZEN);\n\t\tsay(o, \"no report for \"", ["policy"], ["silence"]),
 ("noreport", "tools/memplugd/policy.c", "	if (!vm->have_report) {\n\t\tkeep(o, VS_FROZEN);", "	if (0) {\n\t\tkeep(o, VS_FROZEN);", ["policy"], ["silence"]),
 ("dupkey", "tools/memplugd/report.c", "	if (r->have & RK_BIT(k)) {", "	if (0) {", ["report"], []),
 ("avail>total", "tools/memplugd/report.c", "r->avail > r->total) {", "0) {", ["report"], ["garbage"]),
 ("psimax", "tools/common/report_proto.c", "if (report_keys[k].kind == RKIND_PSI && x > REPORT_PSI_MAX) {", "if (0) {", ["report"], []),
 ("toolong", "tools/memplugd/report.c", "	if (len > REPORT_LINE_MAX - 1) {\n\t\t*why = \"line longer", "	if (0) {\n\t\t*why = \"line longer", ["report"], []),
 ("byte-allowance", "tools/memplugd/report.c", "	return (size_t)(rd->byte_tokens / 1000);", "	return 1 << 20;", ["report"], ["flood"]),
 ("line-rate", "tools/memplugd/report.c", "	if (rd->line_tokens < 1000) {", "	if (0) {", ["report"], ["flood"]),
 ("nobudget", "tools/memplugd/budget.c", "	if (usage <= budget->bytes)\n\t\treturn; /* everybody's wish fits */", "	return;", ["policy"], ["budget"]),
 ("noidlereclaim", "tools/memplugd/budget.c", "	reclaim_idle(vms, out, n, pol_sat_sub(target, budget->bytes), budget);", "	(void)reclaim_idle;", ["policy"], ["budget"]),
 ("noweights", "tools/memplugd/budget.c", "			weight[i] = vms[i].weight ? vms[i].weight : 1;", "			weight[i] = 1;", ["policy"], []),
 ("nooverShare", "tools/memplugd/budget.c", "		out[i].action = POL_RECLAIM;\n\t\tout[i].state = VS_LIMITED;", "		continue;\n\t\tout[i].state = VS_LIMITED;", ["policy"], []),
 ("commit-order", "tools/memplugd/policy.c", "		if (o->to > o->from)", "		if (o->to > vm->requested)", ["policy"], ["stopped_short"]),
 ("settle", "tools/memplugd/policy.c", "		if (now - vm->changed_ms < p->settle_ms) {", "		if (1) {", ["policy"], ["stopped_short"]),
 ("noreconnect", "tools/memplugd/vm.c", "	l->next_try = now + l->backoff_ms;", "	l->next_try = now + 3600000;", [], ["qmp_lost"]),
 ("hup-unchecked", "tools/memplugd/main.c", "	if (config_load(d->config_path, cfg, err, sizeof(err))) {\n\t\tlog_line(LOG_ERR, \"memplugd: SIGHUP", "	if (0) {\n\t\tlog_line(LOG_ERR, \"memplugd: SIGHUP", [], ["sighup"]),
 ("leak", "tools/memplugd/status.c", "	free(text);\n\tif (close(fd))", "	if (close(fd))", [], ["valgrind"]),
 ("exitcode", "tools/memplugd/main.c", "		free(d.cfg);\n\t\treturn EX_CONFIG;", "		free(d.cfg);\n\t\treturn 1;", [], ["command_line"]),
 ("statusrc", "tools/memplugd/status.c", "	running = (kill((pid_t)pid, 0) == 0 || errno == EPERM) &&", "	running = 1 ||", [], ["restart"]),
 ("status-norm", "tools/memplugd/status.c", "				\"memplugd: no status in %s: memplugd is not running (or uses \"", "				\"memplugd: no status in %s: memplugd is (or uses \"", [], ["command_line", "budget"]),
 ("logspam", "tools/memplugd/vm.c", "		if (!vm->shown || vm->shown_state != s)\n", "		if (1)\n", [], ["pressure"]),
 ("flap", "tools/memplugd/vm.c", "	if (l->up && now - l->up_since >= LINK_STABLE_MS)", "	if (l->up)", [], ["event_storm"]),
 ("storm-cap", "tools/memplugctl/qmp.c", "			if (++events > QMP_MAX_EVENTS_PER_REPLY) {", "			if (++events > QMP_MAX_EVENTS_PER_REPLY * 0 + 1000000000) {", [], ["event_storm"]),
 ("qmp-timeout", "tools/memplugd/dev_qmp.c", "	if (drain_events(q, EVENTS_PER_WAKEUP, now) > 0)\n\t\tq->muted_until = next_tick;", "	drain_events(q, EVENTS_PER_WAKEUP, now + 0 * next_tick);", [], ["event_storm"]),
    ("agent-key", "tools/common/report_proto.c", '[RK_GIVE] = { "give",', '[RK_GIVE] = { "gift",', ["report"], ["agent"]),
    ("agent-grow", "tools/memplugd/policy.c", "avail_p = has_avail && rep->avail < vm->buffer;", "avail_p = 0;", ["policy"], ["agent"]),
    ("reserve", "tools/memplugd/main.c", "pol_sat_sub(avail, cfg->host_reserve)", "avail", [], ["host_reserve"]),
    ("unreadable", "tools/memplugd/main.c", "b->bytes = b->limited && b->bytes < in_use ? b->bytes : in_use;", "b->bytes = UINT64_MAX;", [], ["host_reserve"]),
    ("lv-not-answering", "tools/memplugd/dev_libvirt.c", "	if (lv->busy && lv->busy_ms != lv->stuck_ms &&", "	if (0 && lv->busy_ms != lv->stuck_ms &&", [], ["libvirt_down"]),
    ("refusal-spam", "tools/memplugd/vm.c", "			if (strcmp(line, vm->refused) || now - vm->refused_ms >= LINK_RELOG_MS) {", "			if (1) {", [], ["libvirt"]),
    ("lv-alias", "tools/memplugd/dev_libvirt.c", "		if (alias[0] && !strcmp(devs[i].id, alias))", "		if (alias[0] && !i)", [], ["libvirt"]),
    ("interval", "tools/memplugd/policy.c", "	if (now - vm->st.last_shrink_ms < p->shrink_interval_ms)\n\t\treturn;", "", ["policy"], ["idle"]),
]

def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, cwd=WT, capture_output=True, text=True, **kw)

only = sys.argv[1:]
for mid, f, old, new, units, scen in M:
    if only and mid not in only:
        continue
    path = os.path.join(WT, f)
    src = open(path).read()
    if src.count(old) != 1:
        print("%-16s PATTERN NOT FOUND (%d)" % (mid, src.count(old))); continue
    open(path, "w").write(src.replace(old, new))
    try:
        b = sh("make -s -C tools/memplugd && make -s -C tests/memplugd all")
        if b.returncode:
            print("%-16s BUILD FAILED: %s" % (mid, b.stderr[-300:])); continue
        res = []
        for u in units:
            r = sh("tests/memplugd/run-test_%s" % u)
            res.append("unit %s: %s" % (u, "FAILS" if r.returncode else "passes"))
        if scen:
            r = sh("python3 tests/memplugd/integration.py tools/memplugd/memplugd %s"
                       % " ".join(scen), timeout=300)
            for line in r.stdout.splitlines():
                if line.startswith("ok ") or line.startswith("not ok "):
                    res.append(("FAILS: " if line.startswith("not") else "passes: ") + line.split(" ", 3)[-1][:50])
        print("%-16s %s" % (mid, "; ".join(res)), flush=True)
    finally:
        open(path, "w").write(src)
sh("make -s -C tools/memplugd && make -s -C tests/memplugd all")
