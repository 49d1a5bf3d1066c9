#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Section 3 man pages, one per function family, from the kernel-doc
comments of include/shmq/shmq.h: the header is the API's one description,
so the pages cannot drift from it.

    kdoc2man.py HEADER VERSION OUTDIR

Every `/** name() - summary` block before an SHMQ_API declaration, and
every `/** struct name - summary` block before its definition, goes to the
page of its family (FAMILIES, by name prefix); a name no family claims is
an error, so a new call cannot go undocumented.
"""

import datetime
import os
import re
import sys

# page, what the family is, and the name prefixes it takes (first match
# wins; one ending in $ is a whole name)
FAMILIES = [
    ("shmq_queue", "lock-free shared-memory queues",
     ["shmq_queue_", "struct shmq_queue_"]),
    ("shmq_sem", "counting semaphores", ["shmq_sem_", "struct shmq_sem_"]),
    ("shmq_lock", "process-shared locks, recursive or not",
     ["shmq_lock_", "struct shmq_lock_"]),
    ("shmq_event", "events, as threading.Event", ["shmq_event_", "struct shmq_event_"]),
    ("shmq_cond", "condition variables bound to a lock", ["shmq_cond_", "struct shmq_cond_"]),
    ("shmq_barrier", "barriers, as threading.Barrier",
     ["shmq_barrier_", "struct shmq_barrier_"]),
    ("shmq_pipe", "two-ended pipes, as multiprocessing.Pipe",
     ["shmq_pipe_", "struct shmq_pipe_"]),
    ("shmq_poller", "an event loop: watches, timers and futures on one io_uring",
     ["shmq_poller_", "shmq_future_", "shmq_watch_", "struct shmq_poller",
      "struct shmq_future", "struct shmq_watch"]),
    ("shmq_waiter", "asynchronous waits on a caller's own io_uring",
     ["shmq_waiter_", "struct shmq_waiter", "struct shmq_object$"]),
    ("shmq_daemon", "administration: the daemon's status, objects, clients and views",
     ["shmq_daemon_", "shmq_object_list", "shmq_object_stat", "shmq_object_attachments",
      "shmq_view_", "struct shmq_daemon_", "struct shmq_object_info",
      "struct shmq_client_info", "struct shmq_attach_info", "struct shmq_uid_usage",
      "shmq_queue_purge", "shmq_queue_shutdown_name"]),
    ("shmq_client", "connecting to shmqd, names, errors and time",
     ["shmq_client_", "shmq_unlink", "shmq_last_error", "shmq_strerror", "shmq_version",
      "shmq_deadline_", "shmq_now_", "struct shmq_client"]),
]

BLOCK = re.compile(r"/\*\*\n(.*?)\*/\n(.*?)(?=\n\n|\n/\*)", re.S)
HEAD = re.compile(r"^(struct )?(\w+)(\(\))? - (.*)$")


def family_of(name, is_struct):
    key = ("struct " if is_struct else "") + name
    for page, _, prefixes in FAMILIES:
        for p in prefixes:
            if key == p.rstrip("$") or (not p.endswith("$") and key.startswith(p)):
                return page
    return None


def roff(text):
    """Escape text for roff: backslashes, and a line that would be a request."""
    text = text.replace("\\", "\\e").replace("µ", "\\(mc")
    out = []
    for line in text.split("\n"):
        if line.startswith((".", "'")):
            line = "\\&" + line
        out.append(line)
    return "\n".join(out)


def sentence(summary):
    """A summary as a sentence: capitalised, one full stop."""
    s = roff(summary.strip().rstrip("."))
    return s[:1].upper() + s[1:] + "."


def parse(header):
    """[(name, is_struct, summary, params, body, decl)] in header order."""
    src = open(header, encoding="utf-8").read()
    items = []
    for m in BLOCK.finditer(src):
        lines = [re.sub(r"^ ?\* ?", "", l) for l in m.group(1).rstrip().split("\n")]
        h = HEAD.match(lines[0].strip())
        if not h:
            continue
        is_struct, name, summary = bool(h.group(1)), h.group(2), h.group(4)
        decl = m.group(2).strip()
        if is_struct:
            if not decl.startswith("struct " + name):
                continue
            end = decl.find("\n};")
            decl = decl[:end + 3] if end >= 0 else decl
        else:
            if not decl.startswith("SHMQ_API"):
                continue
            decl = decl[:decl.index(";") + 1] if ";" in decl else decl
            decl = re.sub(r"\s+", " ", decl.replace("SHMQ_API ", ""))
        params, body, cur = [], [], None
        for l in lines[1:]:
            p = re.match(r"^@(\w+):\s*(.*)$", l)
            if p and not body:
                cur = [p.group(1), p.group(2)]
                params.append(cur)
            elif cur is not None and not body and l.startswith(("\t", "  ")) and l.strip():
                cur[1] += " " + l.strip()
            else:
                cur = None
                body.append(l)
        items.append((name, is_struct, summary, params, "\n".join(body).strip(), decl))
    return items


def body_roff(body):
    """Paragraphs; Context: and Return: get a label of their own."""
    out = []
    for para in re.split(r"\n\s*\n", body):
        para = para.strip()
        if not para:
            continue
        parts = re.split(r"\n(?=(?:Context|Return):)", para)
        for part in parts:
            label = re.match(r"^(Context|Return):\s*(.*)$", part, re.S)
            out.append(".PP")
            if label:
                out.append("\\fB%s:\\fR %s" % (label.group(1),
                                               roff(re.sub(r"\s+", " ", label.group(2)))))
            else:
                out.append(roff(re.sub(r"[ \t]*\n[ \t]*", "\n", part)))
    return out


def page(name, what, items, version, date, pages):
    fns = [i for i in items if not i[1]]
    structs = [i for i in items if i[1]]
    out = [
        '.\\" Generated by tools/man/kdoc2man.py from include/shmq/shmq.h: do not edit.',
        '.TH %s 3 "%s" "shmq %s" "shmq manual"' % (name.upper(), date, version),
        ".SH NAME",
        "%s \\- %s" % (", ".join(i[0] for i in fns) or name, roff(what)),
        ".SH SYNOPSIS",
        ".nf",
        ".B #include <shmq/shmq.h>",
        ".PP",
    ]
    for f in fns:
        out.append(".BI \"%s\"" % roff(f[5]).replace('"', '\\(dq'))
    out += [".fi", ".PP", "Link with", ".BR \\-lshmq ."]
    if structs:
        out.append(".SH STRUCTURES")
        for s in structs:
            out += [".SS \"struct %s\"" % s[0], sentence(s[2]), ".PP", ".nf"]
            out += roff(s[5]).split("\n")
            out.append(".fi")
            for p in s[3]:
                out += [".TP", ".I %s" % p[0], roff(p[1])]
            out += body_roff(s[4])
    out.append(".SH DESCRIPTION")
    for f in fns:
        out += [".SS \"%s()\"" % f[0], sentence(f[2])]
        for p in f[3]:
            out += [".TP", ".I %s" % p[0], roff(p[1])]
        out += body_roff(f[4])
    out += [".SH SEE ALSO", ",\n".join(".BR %s (3)" % p for p in ["libshmq"] + pages
                                         if p != name) + ",", ".BR shmqd (8)"]
    return "\n".join(out) + "\n"


def main():
    header, version, outdir = sys.argv[1:4]
    date = datetime.datetime.fromtimestamp(
        int(os.environ.get("SOURCE_DATE_EPOCH", os.path.getmtime(header))),
        datetime.timezone.utc).strftime("%Y-%m-%d")
    items = parse(header)
    by_page = {p: [] for p, _, _ in FAMILIES}
    for it in items:
        fam = family_of(it[0], it[1])
        if fam is None:
            sys.exit("kdoc2man: %s%s belongs to no family: add it to FAMILIES"
                     % ("struct " if it[1] else "", it[0]))
        by_page[fam].append(it)
    os.makedirs(outdir, exist_ok=True)
    pages = [p for p, _, _ in FAMILIES]
    for p, what, _ in FAMILIES:
        with open(os.path.join(outdir, p + ".3"), "w", encoding="utf-8") as f:
            f.write(page(p, what, by_page[p], version, date, pages))


if __name__ == "__main__":
    main()
