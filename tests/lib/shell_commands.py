#!/usr/bin/env python3
"""Lists the external commands that shell scripts and Makefile recipes call.

    shell_commands.py FILE...      prints "COMMAND FILE:LINE", one per use

A static scan, good enough to keep `make deps` honest (tests/install/commands.sh):
it takes the first word of every simple command -- at the start of a line and
after ; & && || | ( { $( ` ! and the keywords if/then/do/else/while/until/elif
-- skipping variable assignments and redirections, and looks through the
wrappers that run another command (ip netns exec NS, netns_exec NS,
netns_bg NS, timeout N, env, exec, command, nice, setsid, xargs, unshare ...).
Single-quoted text is skipped (awk/sed programs, python -c); double-quoted
text only for its $(...) parts; here-document bodies are skipped.
Words that are not plain names ($VAR, ./x, globs) are not commands; absolute
paths of system directories (/usr/bin/python3) count by their base name.
Makefiles: recipe lines (tab-indented) and $(shell ...); $(VAR) is replaced by
the VAR ?= / := value when the Makefile assigns one.
Inside case ... esac, the "pattern)" labels are not commands.
Builtins, keywords and functions are filtered by the caller (it knows them).
"""
import os
import re
import sys

WRAPPERS_SKIP = {
    # wrapper: number of following non-option words that are not the command
    "exec": 0, "command": 0, "env": 0, "nice": 0, "nohup": 0, "setsid": 0, "time": 0,
    "stdbuf": 0, "xargs": 0, "sudo": 0, "chroot": 1, "timeout": 1, "netns_exec": 1,
    "netns_bg": 1, "netns_bg_log": 2, "unshare": 0, "setpriv": 0, "capsh": 0, "flock": 1,
    "ns_exec": 1, "in_ns": 1, "coproc": 1, "valgrind": 0, "strace": 0, "taskset": 1, "chrt": 1,
}
KEYWORDS = {"if", "then", "do", "else", "elif", "while", "until", "!", "{", "(", "time",
            "fi", "done", "esac", "}", ")", ";;", "in", "case", "for", "select", "function",
            "[[", "]]"}
SYSDIRS = ("/usr/bin/", "/bin/", "/usr/sbin/", "/sbin/", "/usr/local/bin/", "/usr/local/sbin/")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.+-]*$")


def unquote(line, subs):
    """line without quoted text; $(...) and `...` found inside double quotes go to subs."""
    out, i, n = [], 0, len(line)
    while i < n:
        c = line[i]
        if c == "\\" and i + 1 < n:
            out.append(" ")
            i += 2
        elif c == "'":
            j = line.find("'", i + 1)
            i = n if j < 0 else j + 1
            out.append(" Q ")
        elif c == '"':
            i += 1
            while i < n and line[i] != '"':
                if line[i] == "\\":
                    i += 2
                    continue
                if line.startswith("$(", i) and not line.startswith("$((", i):
                    depth, j = 1, i + 2
                    while j < n and depth:
                        depth += {"(": 1, ")": -1}.get(line[j], 0)
                        j += 1
                    subs.append(line[i + 2:j - 1])
                    i = j
                    continue
                if line[i] == "`":
                    j = line.find("`", i + 1)
                    j = n if j < 0 else j
                    subs.append(line[i + 1:j])
                    i = j + 1
                    continue
                i += 1
            i += 1
            out.append(" Q ")
        elif c == "#" and (i == 0 or line[i - 1] in " \t;|&("):
            break
        else:
            out.append(c)
            i += 1
    return "".join(out)


def commands_of(line, in_case=False):
    """The command words of one logical shell line."""
    subs, found = [line], []
    while subs:
        text = re.sub(r"\$\{[^{}]*\}|\{[A-Za-z_]+\}(?=[<>])", " Q ", subs.pop())   # ${x}, {fd}>
        text = unquote(text, subs)
        if in_case:                                            # "pattern)" of a case
            text = re.sub(r"(^\s*\(?|;;\s*|\bin\s+\(?)[^\s()]+\)(?!\))", r"\1 ; ", text)
        text = re.sub(r"\$?\(\(.*?\)\)", " Q ", text)        # arithmetic
        text = text.replace("$(", " ; ").replace("`", " ; ")
        # redirections: "2>&1" stands alone, ">file" / "> file" hide the next word
        text = re.sub(r"\d*(>>|<<<|<<-?|<>|>&|<&|>\||>|<)(\d+-?|-(?=\s|$))?",
                      lambda m: " " if m.group(2) else " > ", text)
        text = re.sub(r"&&|\|\||[;&|(){}]", " ; ", text)
        for seg in text.split(" ; "):
            words = seg.split()
            if words and words[0] in ("for", "select", "case", "in", "export", "local", "declare", "readonly", "unset"):
                continue
            k, skip, after_redirect = 0, 0, False
            while k < len(words):
                w = words[k]
                k += 1
                if after_redirect:
                    after_redirect = False
                    continue
                if w == ">":
                    after_redirect = True
                    continue
                if w in KEYWORDS or re.match(r"^[A-Za-z_][A-Za-z0-9_]*(\[.*\])?\+?=", w):
                    continue
                if skip:
                    if not w.startswith("-"):
                        skip -= 1
                    continue
                if w.startswith("-") and found and found[-1][1]:
                    if found[-1][0] == "env" and w == "-u":
                        skip = 1                              # env -u NAME
                    continue                                  # a wrapper's options
                if w == "ip" and words[k:k + 2] == ["netns", "exec"]:
                    k += 3                                    # ip netns exec NS cmd
                    found.append(("ip", True))
                    continue
                if w.startswith(SYSDIRS):
                    w = os.path.basename(w)
                if w in WRAPPERS_SKIP:
                    found.append((w, True))
                    skip = WRAPPERS_SKIP[w]
                    continue
                if NAME.match(w) and w != "Q":
                    found.append((w, False))
                break
    return sorted({w for w, _ in found})


def quote_open(text):
    """Is a quote (or an array assignment's parenthesis) still open at the end of text?"""
    q, i = None, 0
    while i < len(text):
        c = text[i]
        if c == "\\" and q != "'":
            i += 2
            continue
        if q:
            if c == q:
                q = None
        elif c in "'\"":
            q = c
        elif c == "#" and (i == 0 or text[i - 1] in " \t"):
            break
        i += 1
    return q is not None


def logical_lines(path, make):
    raw = open(path, encoding="utf-8", errors="replace").read().split("\n")
    mvars, heredoc, buf, start, in_array = {}, None, "", 0, False
    if make:
        for l in raw:
            m = re.match(r"^([A-Z_]+)\s*[:?]?=\s*(\S+)", l)
            if m and NAME.match(m.group(2)):
                mvars.setdefault(m.group(1), m.group(2))
    for no, l in enumerate(raw, 1):
        if heredoc:
            if l.strip() == heredoc:
                heredoc = None
            continue
        if make:
            l = re.sub(r"\$\(([A-Za-z_]+)\)", lambda m: mvars.get(m.group(1), "$" + m.group(1)), l)
            shells = re.findall(r"\$\(shell ([^)]*)\)", l)
            if not l.startswith("\t") and not buf:
                for s in shells:
                    yield no, s
                continue
            l = l.lstrip("\t").lstrip("@-")
            l = re.sub(r"\$\(([A-Za-z_]+)\)", lambda m: mvars.get(m.group(1), "$" + m.group(1)), l)
            for _ in range(3):                                # make functions, inside out
                l = re.sub(r"\$\((?!shell )[a-z-]+ [^()]*\)", " Q ", l)
            l = l.replace("$$", "$")
        if not buf:
            start = no
        if l.endswith("\\"):
            buf += l[:-1] + " "
            continue
        buf += l
        if in_array:
            in_array = not re.search(r"\)\s*(#.*)?$", l)
            buf = ""
            continue
        if re.match(r"^\s*(local |declare |readonly )?[A-Za-z_][A-Za-z0-9_]*\+?=\(", buf):
            in_array = not re.search(r"\)\s*(#.*)?$", l)      # an array assignment: values
            buf = ""
            continue
        if quote_open(buf):
            buf += "\n"
            continue
        m = re.search(r"<<-?\s*['\"]?([A-Za-z_]+)['\"]?", buf)
        if m:
            heredoc = m.group(1)
        yield start, buf
        buf = ""


def main():
    for path in sys.argv[1:]:
        make = os.path.basename(path) == "Makefile" or path.endswith(".mk")
        depth = 0                                              # case ... esac nesting
        for no, line in logical_lines(path, make):
            if not make and line.lstrip().startswith("#"):
                continue
            depth += len(re.findall(r"\bcase\b.*\bin\b", line))
            for c in commands_of(line, depth > 0):
                print(f"{c} {path}:{no}")
            depth = max(0, depth - len(re.findall(r"\besac\b", line)))


if __name__ == "__main__":
    main()
