"""cross/hot-text.sh's arithmetic: executed code -> input sections -> linker script patterns.

  hot-text.py trace MAP ICF NM OUT CG...     callgrind traces (the most common way of checking
                                             first) -> OUT, the hot (file, section)s in order
  hot-text.py faults MAP NM SECTIONS OUT PERF...
                                             `perf script --no-demangle -F ip,sym,symoff` page
                                             faults (files named ...-WAY.faults) in .text and
                                             .text.late, or in a later way's code -> appended to OUT
  hot-text.py script ICF SECTIONS FAULTS -- EARLY... -- LATE...
                                             the linker script, on stdout

The order within .text.hot is what a daemon's resident set is made of: it maps the windows that
hold code it ran. So first the code every trace ran (start-up and the common check path), then
EARLY (hand-added code every check runs) and the faults' finds (code that runs natively now and
then, whatever the way of checking: a contended lock, a timed wait), then each trace's own code in
the order given; LATE (hand-added code for rare paths) goes in an output section of its own,
.text.late, after it. A daemon checking one way maps the start of .text.hot and little of the
rest. The native rounds look for faults in .text.late as in the cold .text, and in the code of a
way that comes after the run's own (timing decides some paths: the traces, slowed down by
valgrind, put a connection's slow path with another way's code): what faults there moves up, so
the layout they last tested is the one written.
"""
import bisect
import re
import sys


def text_sections(map_path):
    """(vma, size, file, section, output section) of every input section of .text, .text.hot and
    .text.late, from lld's map: VMA LMA SIZE ALIGN, then output section, input section or symbol
    by indentation."""
    secs, out = [], None
    for line in open(map_path):
        m = re.match(r'^\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+ (.*)$', line.rstrip('\n'))
        if not m:
            continue
        rest = m.group(3)
        indent = len(rest) - len(rest.lstrip(' '))
        if indent == 0:
            out = rest.strip()
        elif indent == 8 and out in ('.text', '.text.hot', '.text.late'):
            f = re.match(r'(.*):\((.*)\)$', rest.strip())
            if f:
                secs.append((int(m.group(1), 16), int(m.group(2), 16), f.group(1), f.group(2), out))
    secs.sort()
    return secs


def symbols(nm_path):
    syms = {}
    for line in open(nm_path):
        f = line.split()
        if len(f) == 4:
            syms[f[3]] = int(f[0], 16)
    return syms


def containing(secs, addrs):
    starts = [s[0] for s in secs]
    for a in sorted(addrs):
        i = bisect.bisect_right(starts, a) - 1
        if i >= 0 and a < secs[i][0] + secs[i][1]:
            yield secs[i]


def trace(map_path, icf_path, nm_path, out_path, cg_paths):
    """Executed instruction addresses (callgrind --dump-instr=yes: absolute, +N, -N or *) of
    each trace, as link-time addresses. Valgrind does not report one load address for the whole
    binary (on a static PIE with .text.hot, code in .text came out 0x108000 apart from code in
    .text.hot), so each function's addresses are moved by that function's own offset: its
    lowest executed address, its entry, against its address in nm (the traces are written with
    --demangle=no, so the names match); a function nm does not name takes the offset most
    functions share."""
    syms = symbols(nm_path)
    executed_by = []
    for path in cg_paths:
        executed = set()
        names, fn, cur, blocks = {}, None, 0, {}
        for line in open(path):
            m = re.match(r'(c?fn)=\((\d+)\)(?: (.*))?', line)
            if m:
                if m.group(3):
                    names[m.group(2)] = m.group(3).strip()
                if m.group(1) == 'fn':
                    fn = names.get(m.group(2))
                continue
            tok = line.split(None, 1)[0] if line.strip() else ''
            if tok.startswith('0x'):
                cur = int(tok, 16)
            elif tok[:1] in '+-' and tok[1:].isdigit():
                cur += int(tok)
            elif tok != '*':
                continue
            blocks.setdefault(fn, set()).add(cur)
        offsets = {fn: min(a) - syms[fn] for fn, a in blocks.items() if fn in syms}
        if not offsets:
            sys.exit('hot-text: no traced function is named in nm: were the traces demangled?')
        votes = {}
        for o in offsets.values():
            votes[o] = votes.get(o, 0) + 1
        common = max(votes, key=votes.get)
        print('hot-text: %s: %d functions, %d named in nm, most at offset %#x' %
              (path.rsplit('/', 1)[-1], len(blocks), len(offsets), common), file=sys.stderr)
        for fn, addrs in blocks.items():
            o = offsets.get(fn, common)
            executed |= {a - o for a in addrs}
        executed_by.append(executed)
    secs = text_sections(map_path)
    # Each trace's sections, in address order (dicts keep it).
    ran = [{(s[2], s[3]): s[1] for s in containing(secs, executed)} for executed in executed_by]
    everywhere = {k: v for k, v in ran[0].items() if all(k in r for r in ran)}
    hot = dict(everywhere)
    groups = [everywhere]
    for r in ran:
        groups.append({k: v for k, v in r.items() if k not in hot})
        hot.update(groups[-1])
    if not hot:
        sys.exit('hot-text: no executed section found: is the map from the traced binary?')
    print('hot-text: %d sections, %d bytes executed; by every trace %d bytes, then %s' %
          (len(hot), sum(hot.values()), sum(everywhere.values()),
           ', '.join('%s %d' % (p.rsplit('/', 1)[-1], sum(g.values()))
                     for p, g in zip(cg_paths, groups[1:]))), file=sys.stderr)
    with open(out_path, 'w') as out:
        for i, group in enumerate(groups):
            if i > 0:
                out.write('-- %s\n' % way(cg_paths[i - 1]))
            for f, sec in group:
                out.write('%s %s\n' % (f, sec))
            if i == 0:
                out.write('--\n')


def way(path):
    """The way of checking a trace or a fault file is of: the end of its name (trace-rsa.cg,
    refine-2-verify.faults)."""
    return path.rsplit('/', 1)[-1].rsplit('.', 1)[0].rsplit('-', 1)[-1]


def faults(map_path, nm_path, sections_path, out_path, perf_paths):
    """Instruction fetches that faulted in the cold .text or in .text.late (the rare paths), or in
    the code of a way that comes after the run's own: code the traces missed or put too late,
    which belongs with the code every daemon may run."""
    syms = symbols(nm_path)
    # Each way's place in .text.hot, by pattern (the plain build names its sections differently).
    rank, ranks, r = {}, {}, 0
    for line in open(sections_path):
        line = line.rstrip('\n')
        if line.startswith('--'):
            if line != '--':
                r += 1
                ranks[line[3:]] = r
            continue
        f, sec = line.split(' ', 1)
        rank.setdefault(pattern(f, sec), r)
    secs = text_sections(map_path)
    unknown, cold = set(), set()
    for path in perf_paths:
        mine, late = set(), ranks.get(way(path), 0)
        for line in open(path):
            m = re.match(r'\s*[0-9a-f]+\s+(\S+)\+0x([0-9a-f]+)$', line.rstrip())
            if m and m.group(1) in syms:
                mine.add(syms[m.group(1)] + int(m.group(2), 16))
            elif m and '::' in m.group(1):
                unknown.add(m.group(1))
        for s in containing(secs, mine):
            if s[4] != '.text.hot' or rank.get(pattern(s[2], s[3]), 0) > late:
                cold.add((s[2], s[3]))
    # A demangled name matches nothing nm prints, and its cold fault would go unseen.
    if unknown:
        sys.exit('hot-text: demangled names in the faults (perf script --no-demangle?): %s'
                 % ', '.join(sorted(unknown)[:5]))
    for f, sec in sorted(cold):
        print('hot-text: executed but not traced: %s' % sec, file=sys.stderr)
    with open(out_path, 'a') as out:
        for f, sec in sorted(cold):
            out.write('%s %s\n' % (f, sec))
    return len(cold)


def rust(name):
    """A v0 symbol with crate and impl disambiguators, back-references, the instantiating crate
    of a generic and LLVM's .N suffixes as wildcards: they differ per target, per dependency set
    and per build (which crate's copy of a generic LTO keeps is arbitrary)."""
    name = re.sub(r'\.[0-9]+$', '', name)
    name = re.sub(r'Cs[0-9A-Za-z]*_', 'C*', name)
    name = re.sub(r'B[0-9A-Za-z]*_', 'B*_', name)
    name = re.sub(r'([MXY])s[0-9A-Za-z]*_', r'\1*', name)
    # A path ends in an identifier or a generic argument list; a crate (C and its
    # length-prefixed name, or a back-reference) at the very end is the instantiating crate.
    if name.endswith('B*_'):
        return name[:-3] + '*'
    i = name.rfind('C*')
    m = re.fullmatch(r'(\d+)(\w+)', name[i + 2:]) if i > 3 else None
    if m and len(m.group(2)) == int(m.group(1)):
        return name[:i] + '*'
    return name + '*'


def pattern(f, sec):
    member = re.search(r'\(([^)]*)\)$', f)
    base = member.group(1) if member else f.rsplit('/', 1)[-1]
    if sec == '.text':
        # An assembly object: its build-hash prefix goes.
        return '*%s(.text)' % re.sub(r'^[0-9a-f]{16}-', '', base)
    if '._R' in sec:
        prefix, name = sec.split('._R', 1)
        return '*(%s._%s)' % (prefix, rust('R' + name))
    return '*(%s)' % re.sub(r'\.[0-9]+$', '*', re.sub(r'ring_core_[0-9_]*__', 'ring_core_*__', sec))


def script(icf_path, sections_path, faults_path, early, late):
    lines = [line.rstrip('\n') for line in open(sections_path)]
    split = lines.index('--')
    hot = [tuple(line.split(' ', 1)) for line in lines if not line.startswith('--')]
    try:
        found = [tuple(line.rstrip('\n').split(' ', 1)) for line in open(faults_path)]
    except FileNotFoundError:
        found = []
    # Sections the linker folds together with a hot one come along: any of them may be the
    # copy it keeps.
    groups, kept = {}, None
    for line in open(icf_path):
        m = re.match(r'\s*(selected|removing identical) section (.*):\((.*)\)$', line.rstrip())
        if m:
            if m.group(1) == 'selected':
                kept = m.group(3)
                groups[kept] = []
            groups[kept].append((m.group(2), m.group(3)))
    by_member = {sec: members for members in groups.values() for _, sec in members}
    patterns = []

    def add(ps):
        patterns.extend(p for p in dict.fromkeys(ps) if p not in patterns)

    # A hot section's folded twins right after it.
    def with_twins(sections):
        for f, sec in sections:
            yield pattern(f, sec)
            for m in by_member.get(sec, []):
                yield pattern(*m)
    add(with_twins(hot[:split]))
    add(early)
    add(with_twins(found))
    add(with_twins(hot[split:]))
    hot_end = len(patterns)
    add(late)
    print('/* Generated by cross/hot-text.sh: the code a running mysqlchk executes, first and')
    print('   together (build.rs links every musl release build with it). Do not edit. */')
    print('SECTIONS {\n  .text.hot : {')
    for p in patterns[:hot_end]:
        print('    ' + p)
    print('  }\n  .text.late : {')
    for p in patterns[hot_end:]:
        print('    ' + p)
    print('  }\n} INSERT BEFORE .text;')


if __name__ == '__main__':
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == 'trace':
        trace(args[0], args[1], args[2], args[3], args[4:])
    elif cmd == 'faults':
        print(faults(args[0], args[1], args[2], args[3], args[4:]))
    elif cmd == 'script':
        first = args.index('--')
        second = args.index('--', first + 1)
        script(args[0], args[1], args[2], args[first + 1:second], args[second + 1:])
    else:
        sys.exit(__doc__)
