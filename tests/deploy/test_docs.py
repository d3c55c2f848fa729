"""The documentation is a path a reader can follow (issue 20): in README.md and every docs/*.md,
every relative link and anchor resolves, every "SPEC §N" cited anywhere in the repository names a
section of docs/SPEC.md, and every shell block parses: `bash -n` accepts it, each variable it
uses is set earlier in the block, and each `scripts/X`, `make T` and `reaperctl SUB` names a
script, target or subcommand that exists with only flags its `--help` lists."""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGS = {"bash", "sh", "shell"}
# Set by the shell or the login, never by a reader following the docs.
ENV_EXCEPTIONS = {"HOME", "PATH", "PWD", "USER"}
# Words that may precede the program of a simple command.
PREFIX_WORDS = {"!", "if", "then", "elif", "else", "do", "while", "until", "time", "exec", "{"}


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


# ---- markdown -------------------------------------------------------------------------------


@dataclass
class Block:
    lang: str
    text: str
    line: int  # line of the first content line, 1-based


FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")


def split_markdown(text: str) -> tuple[list[tuple[int, str]], list[Block]]:
    """(prose lines with their numbers, fenced blocks). Indented fences (in list items) count."""
    prose, blocks = [], []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            prose.append((i + 1, lines[i]))
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3).lower()
        body, j = [], i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            line = lines[j]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            j += 1
        assert j < len(lines), f"unclosed code fence at line {i + 1}"
        blocks.append(Block(lang, "\n".join(body) + "\n", i + 2))
        i = j + 1
    return prose, blocks


def strip_inline_code(line: str) -> str:
    return re.sub(r"(`+)(.+?)\1", "", line)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation but `-` and `_`
    removed, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@functools.cache
def anchors(path: Path) -> frozenset[str]:
    prose, _ = split_markdown(path.read_text())
    seen: dict[str, int] = {}
    out = set()
    for _, line in prose:
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return frozenset(out)


LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_every_relative_link_and_anchor_resolves(doc: Path) -> None:
    broken = link_problems(doc)
    assert not broken, "broken links:\n" + "\n".join(broken)


def link_problems(doc: Path) -> list[str]:
    prose, _ = split_markdown(doc.read_text())
    broken = []
    for number, line in prose:
        for target in LINK.findall(strip_inline_code(line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path_part, _, anchor = target.partition("#")
            dest = (doc.parent / path_part).resolve() if path_part else doc
            if not dest.exists():
                broken.append(f"{rel(doc)}:{number}: {target}: {path_part} does not exist")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{rel(doc)}:{number}: {target}: no heading in {rel(dest)} has the anchor #{anchor}")
            elif anchor and dest.suffix != ".md":
                broken.append(f"{rel(doc)}:{number}: {target}: an anchor into a file that is not markdown")
    return broken


# ---- SPEC §N --------------------------------------------------------------------------------

SPEC = ROOT / "docs/SPEC.md"
CITED_EXTS = {".rs", ".py", ".yaml", ".yml", ".md", ".sh", ".json", ".toml"}
SPEC_CHAIN = re.compile(r"SPEC\s*§\s*\d+(?:\s*(?:/|,|and|or|&)\s*§\s*\d+)*")


def spec_sections() -> set[int]:
    assert SPEC.is_file(), "docs/SPEC.md is missing, yet the code and tests cite SPEC §1-§11"
    return {int(n) for n in re.findall(r"^## (\d+)\. \S", SPEC.read_text(), re.M)}


def repository_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    files = []
    for name in out:
        path = ROOT / name
        if not path.is_file():
            continue
        if path.suffix in CITED_EXTS or name.startswith("scripts/") or path.name == "Makefile":
            files.append(path)
    return files


def test_spec_sections_are_numbered_one_to_n() -> None:
    spec_sections()
    numbers = [int(n) for n in re.findall(r"^## (\d+)\. \S", SPEC.read_text(), re.M)]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 11, (
        f"docs/SPEC.md sections are {numbers}; the code cites §1-§11 as '## N. Title'"
    )


def test_every_spec_section_cited_anywhere_exists() -> None:
    sections = spec_sections()
    missing = []
    for path in repository_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        is_doc = path in DOCS
        for number, line in enumerate(text.split("\n"), 1):
            cited = [int(n) for chain in SPEC_CHAIN.findall(line) for n in re.findall(r"§\s*(\d+)", chain)]
            if is_doc:
                # README and docs cite the contract by bare "§N" too (SPEC.md itself, link texts).
                cited += [int(n) for n in re.findall(r"§\s*(\d+)", line)]
            missing += [f"{rel(path)}:{number}: SPEC §{n}" for n in cited if n not in sections]
    assert not missing, (
        f"cited sections that docs/SPEC.md (sections {sorted(sections)}) does not have:\n" + "\n".join(missing)
    )


def test_spec_citations_are_found() -> None:
    """The scan above must see the code's citations, or it proves nothing."""
    rs = [p for p in repository_files() if p.suffix == ".rs"]
    found = sum(len(SPEC_CHAIN.findall(p.read_text())) for p in rs)
    assert found >= 50, f"only {found} SPEC citations found in the Rust sources"


# ---- shell blocks: what exists ----------------------------------------------------------------


@functools.cache
def script_flags(name: str) -> frozenset[str] | None:
    path = ROOT / "scripts" / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        return None
    out = subprocess.run([str(path), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"scripts/{name} --help exited {out.returncode}: {out.stderr}"
    # A flag is one the usage line or an option line (indented, starting with --) offers, not any
    # word in the prose (`git describe --always` is not a flag of publish).
    offered = {"--help"}
    for line in (out.stdout + out.stderr).splitlines():
        if line.startswith("Usage:"):
            spec = line
        elif re.match(r"^\s+--[a-z]", line):
            spec = re.split(r"\s{2,}", line.strip())[0]
        else:
            continue
        offered |= set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", spec))
    return frozenset(offered)


@functools.cache
def make_targets() -> frozenset[str]:
    rules = re.findall(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)\s*:(?!=)", (ROOT / "Makefile").read_text(), re.M)
    listed = subprocess.run(["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    return frozenset(rules) | frozenset(line.split()[0] for line in listed.stdout.splitlines() if line.strip())


@functools.cache
def reaperctl() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    # Always through cargo, which rebuilds only what changed: a stale binary would check the
    # docs against flags the sources no longer have.
    build = subprocess.run(
        ["cargo", "build", "--locked", "--workspace", "--bins"], cwd=ROOT, capture_output=True, text=True
    )
    assert build.returncode == 0, f"cargo build --locked --workspace --bins failed:\n{build.stderr[-4000:]}"
    binary = target / "debug/reaperctl"
    assert binary.is_file(), f"{binary} missing after the build"
    return binary


def clap_help(args: list[str]) -> str:
    out = subprocess.run([str(reaperctl()), *args, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"reaperctl {' '.join(args)} --help exited {out.returncode}: {out.stderr}"
    return out.stdout


@functools.cache
def reaperctl_subcommands() -> frozenset[str]:
    text = clap_help([])
    section = text.split("Commands:", 1)[1].split("\n\n", 1)[0] if "Commands:" in text else ""
    return frozenset(line.split()[0] for line in section.splitlines() if line.strip()) - {"help"}


@functools.cache
def reaperctl_flags(sub: str | None) -> frozenset[str]:
    text = clap_help([sub] if sub else [])
    return frozenset(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text)) | {"--help"}


# ---- shell blocks: reading them -----------------------------------------------------------------


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with backslash continuations joined, and comments removed (a `#` that starts a word
    outside quotes)."""
    out, buf, start = [], "", None
    for number, line in enumerate(text.split("\n"), 0):
        if start is None:
            start = number
        line = strip_comment(line)
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip():
            out.append((start, buf))
        buf, start = "", None
    return out


def strip_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
            elif ch == "\\" and quote == '"':
                continue
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t;|&("):
            return line[:i].rstrip()
    return line.rstrip()


def unquoted_single(line: str) -> str:
    """The line with single-quoted text blanked: nothing in it is expanded."""
    out, quote = [], None
    for ch in line:
        if quote == "'":
            if ch == "'":
                quote = None
            out.append(" ")
            continue
        if quote == '"':
            if ch == '"':
                quote = None
        elif ch in "'\"":
            quote = ch
            if ch == "'":
                out.append(" ")
                continue
        out.append(ch)
    return "".join(out)


ASSIGN = re.compile(r"(?:^|[\s;&|(])(?:export\s+|local\s+|readonly\s+)?([A-Za-z_][A-Za-z0-9_]*)=")
LOOP_VAR = re.compile(r"\b(?:for|select)\s+([A-Za-z_][A-Za-z0-9_]*)\s+in\b|\bread\s+(?:-[a-z]+\s+)*([A-Za-z_][A-Za-z0-9_]*)")
USE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(:?[-=+?])?|([A-Za-z_][A-Za-z0-9_]*))")


def unset_variables(block: Block) -> list[str]:
    assigned: set[str] = set()
    problems = []
    for offset, line in logical_lines(block.text):
        visible = unquoted_single(line)
        # An assignment takes effect at the end of its statement, so X=$(f "$X") still needs X.
        pending = []
        for m in ASSIGN.finditer(visible):
            end = min([i for i in (visible.find(";", m.end()), visible.find("&&", m.end())) if i >= 0] or [len(visible)])
            pending.append((end, m.group(1)))
        for m in LOOP_VAR.finditer(visible):
            pending.append((m.start(), m.group(1) or m.group(2)))
        for m in USE.finditer(visible):
            name = m.group(1) or m.group(3)
            if m.group(2) or name in ENV_EXCEPTIONS:  # ${X:-default} and the like
                continue
            if name in assigned or any(end <= m.start() and var == name for end, var in pending):
                continue
            problems.append(f"line {block.line + offset}: ${name} is used but not set earlier in the block")
        assigned |= {var for _, var in pending}
    return problems


def commands(line: str) -> list[list[str]]:
    """The simple commands of one logical line, command substitutions included, as words."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        tokens = list(lexer)
    except ValueError as e:
        raise AssertionError(f"cannot split {line!r}: {e}") from e
    out, current = [], []
    for tok in tokens:
        for inner in substitutions(tok):
            out += commands(inner)
        if tok and set(tok) <= set(";&|()<>"):
            if current:
                out.append(current)
            current = []
        else:
            current.append(tok)
    if current:
        out.append(current)
    return out


def substitutions(word: str) -> list[str]:
    """The text of every `$(...)` inside a word (double-quoted ones stay inside one word)."""
    found, i = [], word.find("$(")
    while i >= 0:
        depth, j = 0, i + 1
        while j < len(word):
            depth += {"(": 1, ")": -1}.get(word[j], 0)
            if depth == 0:
                break
            j += 1
        found.append(word[i + 2 : j])
        i = word.find("$(", j)
    return found


def program(words: list[str]) -> tuple[str, list[str]] | None:
    i = 0
    while i < len(words) and (words[i] in PREFIX_WORDS or re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[i])):
        i += 1
    if i >= len(words):
        return None
    return words[i], words[i + 1 :]


def flags(args: list[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in args if a.startswith("--") and len(a) > 2]


def invocation_problems(words: list[str]) -> list[str]:
    found = program(words)
    if not found:
        return []
    prog, args = found
    shown = " ".join([prog, *args])
    m = re.match(r"^(?:\./)?scripts/([\w.-]+)$", prog)
    if m:
        known = script_flags(m.group(1))
        if known is None:
            return [f"{shown}: scripts/{m.group(1)} is not an executable script"]
        return [f"{shown}: scripts/{m.group(1)} has no flag {f} (its --help lists {sorted(known)})" for f in flags(args) if f not in known]
    if prog == "make":
        targets = [a for a in args if not a.startswith("-") and "=" not in a]
        return [f"{shown}: the Makefile has no target {t}" for t in targets if t not in make_targets()]
    if prog == "reaperctl" or prog.endswith("/reaperctl"):
        positional = [a for a in args if not a.startswith("-")]
        sub = positional[0] if positional and not args[0].startswith("-") else None
        if sub is not None and sub not in reaperctl_subcommands():
            return [f"{shown}: reaperctl has no subcommand {sub} (it has {sorted(reaperctl_subcommands())})"]
        known = reaperctl_flags(sub)
        where = f"reaperctl {sub}" if sub else "reaperctl"
        return [f"{shown}: {where} has no flag {f}" for f in flags(args) if f not in known]
    return []


def shell_blocks() -> list[tuple[str, Block]]:
    out = []
    for doc in DOCS:
        _, blocks = split_markdown(doc.read_text())
        out += [(f"{rel(doc)}:{b.line}", b) for b in blocks if b.lang in SHELL_LANGS]
    return out


BLOCKS = shell_blocks()


def test_there_are_shell_blocks_to_check() -> None:
    assert len(BLOCKS) >= 10, f"only {len(BLOCKS)} shell blocks found in README.md and docs/"


@pytest.mark.parametrize("where,block", BLOCKS, ids=[w for w, _ in BLOCKS])
def test_shell_block_parses_and_sets_its_variables(where: str, block: Block) -> None:
    syntax = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True)
    assert syntax.returncode == 0, f"{where}: bash -n refuses the block:\n{syntax.stderr}"
    problems = unset_variables(block)
    assert not problems, f"{where}:\n" + "\n".join(problems)


@pytest.mark.parametrize("where,block", BLOCKS, ids=[w for w, _ in BLOCKS])
def test_shell_block_names_only_real_scripts_targets_subcommands_and_flags(where: str, block: Block) -> None:
    problems = []
    for offset, line in logical_lines(block.text):
        for words in commands(line):
            problems += [f"line {block.line + offset}: {p}" for p in invocation_problems(words)]
    assert not problems, f"{where}:\n" + "\n".join(problems)


# ---- the checker itself -----------------------------------------------------------------------


def test_the_link_checker_catches_a_missing_file_and_anchor(tmp_path: Path) -> None:
    doc = tmp_path / "a.md"
    (tmp_path / "b.md").write_text("# B\n\n## 2. Tag grammar\n\n```bash\n# not a heading\n```\n")
    doc.write_text(
        "[ok](b.md#2-tag-grammar) [gone](c.md) [no anchor](b.md#not-a-heading) `[code](x.md)`\n"
        "[web](https://example.com/x#y) [self](#top)\n\n# Top\n"
    )
    assert [p.split(": ", 1)[1] for p in link_problems(doc)] == [
        "c.md: c.md does not exist",
        f"b.md#not-a-heading: no heading in {tmp_path / 'b.md'} has the anchor #not-a-heading",
    ]


def test_the_checker_catches_what_it_is_for() -> None:
    """Each check on a block that breaks it, so a silently lenient checker fails here."""
    block = Block("bash", 'KEY=$(scripts/publish --bucket-prefix "$PREFIX")\nX=$(echo "$X")\necho \'$LITERAL\' "${SET:-ok}" "$HOME"\n', 1)
    assert unset_variables(block) == [
        "line 1: $PREFIX is used but not set earlier in the block",
        "line 2: $X is used but not set earlier in the block",
    ]
    assert ["scripts/publish", "--bucket-prefix", "$PREFIX"] in commands(logical_lines(block.text)[0][1])
    assert invocation_problems(["scripts/deploy", "--no-such-flag"]) == [
        f"scripts/deploy --no-such-flag: scripts/deploy has no flag --no-such-flag (its --help lists {sorted(script_flags('deploy'))})"
    ]
    assert invocation_problems(["scripts/nonexistent"]) == ["scripts/nonexistent: scripts/nonexistent is not an executable script"]
    assert invocation_problems(["make", "no-such-target"]) == ["make no-such-target: the Makefile has no target no-such-target"]
    assert invocation_problems(["make", "demo", "ARGS=--yes"]) == []
    assert invocation_problems(["reaperctl", "why", "i-0123456789abcdef0", "--region", "eu-west-1"]) == []
    assert invocation_problems(["reaperctl", "plan", "--no-such-flag"]) == [
        "reaperctl plan --no-such-flag: reaperctl plan has no flag --no-such-flag"
    ]
    assert invocation_problems(["reaperctl", "frobnicate"])[0].startswith(
        "reaperctl frobnicate: reaperctl has no subcommand frobnicate"
    )
    assert [(n, " ".join(l.split())) for n, l in logical_lines("a \\\n  --b # c\necho x#y\n")] == [(0, "a --b"), (2, "echo x#y")]
    assert slug("`deploy_reaper.yaml` parameters (StackSet `ec2-reaper`)") == "deploy_reaperyaml-parameters-stackset-ec2-reaper"
    assert slug("2. Tag grammar") == "2-tag-grammar"


# ---- the first build says so (issue 20, item 3) ---------------------------------------------


@pytest.mark.parametrize("target", ["demo", "test-rust"])
def test_the_first_build_says_it_takes_minutes_and_shows_cargos_progress(target: str) -> None:
    """`make demo` was silent for 11 minutes on a fresh machine: cargo ran with --quiet and
    nothing said that the first build compiles the AWS SDK."""
    dry = subprocess.run(["make", "--no-print-directory", "-n", target], cwd=ROOT, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    cargo = [i for i, line in enumerate(lines) if re.match(r"^\s*cargo\b", line)]
    assert cargo, f"make {target} runs no cargo command:\n{dry.stdout}"
    said = [i for i, line in enumerate(lines) if "first build" in line and "minutes" in line]
    assert said and said[0] < cargo[0], f"make {target} does not say before cargo starts that the first build takes minutes:\n{dry.stdout}"
    assert "--quiet" not in lines[cargo[0]].split(), f"make {target} builds with cargo --quiet: {lines[cargo[0]]}"


# ---- the layout names what is there -----------------------------------------------------------


def test_the_layout_names_every_script_and_every_doc() -> None:
    """The Layout section once left out docs/SECURITY.md and scripts/check-iam."""
    sections = []
    for doc in DOCS:
        text = doc.read_text()
        m = re.search(r"^## Layout\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
        if m:
            sections.append(m.group(1))
    assert len(sections) == 1, f"expected one '## Layout' section in README.md or docs/, found {len(sections)}"
    words = set(re.findall(r"[\w.-]+", sections[0]))
    scripts = sorted(p.name for p in (ROOT / "scripts").iterdir() if p.is_file() and os.access(p, os.X_OK))
    docs = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    missing = [f"scripts/{n}" for n in scripts if n not in words] + [f"docs/{n}" for n in docs if n not in words]
    assert not missing, f"the Layout section does not mention: {', '.join(missing)}"


# ---- the Slack app manifest (docs/ACTIONS.md) ----------------------------------------------------


def test_the_slack_app_manifest_points_clicks_at_the_function_and_asks_one_scope() -> None:
    """The manifest an operator pastes into Slack: interactivity on, its request URL a Function
    URL (where deploy_actions.yaml's FunctionUrl output goes), and only the scope the reapers use."""
    import yaml

    text = (ROOT / "docs/ACTIONS.md").read_text()
    m = re.search(r"^### The Slack app\s*$.*?```yaml\n(.*?)```", text, re.M | re.S)
    assert m, "docs/ACTIONS.md has no yaml block under '### The Slack app'"
    manifest = yaml.safe_load(m.group(1))
    assert set(manifest) == {"display_information", "features", "oauth_config", "settings"}
    assert manifest["display_information"]["name"]
    interactivity = manifest["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True
    assert re.fullmatch(r"https://<[^>]+>\.lambda-url\.<region>\.on\.aws/", interactivity["request_url"])
    assert manifest["oauth_config"]["scopes"] == {"bot": ["incoming-webhook"]}
    assert manifest["settings"]["socket_mode_enabled"] is False
