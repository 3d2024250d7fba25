"""The folders of Sources/PicoRuntime depend one way.

docs/runtime.md's "Folders" section lists the layers in a code block, the highest first, one
line per layer (folders on one line are peers). A folder may use the types, global names and
extension members declared in the folders of lower layers only: not those of its own layer's
other folders, and not those of higher layers. This reads every `Sources/PicoRuntime/<Folder>/
*.swift`, collects what each folder declares at the top level (types, type aliases, global
functions and values, and members it adds to types declared outside PicoRuntime, such as
`String`), and reports each use that breaks the order, naming the file and the name.

Run: python3 system-tests/docs/runtime_layers.py   (exit status 1 and one line per violation)
"""
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RUNTIME = os.path.join("Sources", "PicoRuntime")
MODIFIERS = r"(?:(?:public|internal|private|fileprivate|package|open|final|indirect|nonisolated|static|class|mutating|override|@\w+(?:\([^)]*\))?)\s+)*"
DECLARATION = re.compile(rf"^{MODIFIERS}(?:class|struct|enum|protocol|actor|typealias|func|let|var)\s+([A-Za-z_]\w*)", re.M)
EXTENSION = re.compile(r"^(?:(?:public|internal|private|fileprivate|package)\s+)?extension\s+([A-Za-z_][\w.]*)[^\n]*\{\n(.*?)^\}", re.M | re.S)
MEMBER = re.compile(rf"^    {MODIFIERS}(?:func|var|let)\s+([A-Za-z_]\w*)", re.M)
STRING_START = re.compile(r'(#*)("""|")')
IDENTIFIER = re.compile(r"(\.?)\b([A-Za-z_]\w*)\b")


def layers(root=ROOT):
    """[[folder, ...], ...] from docs/runtime.md's Folders section, the lowest layer first."""
    with open(os.path.join(root, "docs", "runtime.md")) as handle:
        text = handle.read()
    section = re.search(r"^## Folders\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    if not section:
        raise ValueError("docs/runtime.md has no '## Folders' section")
    block = re.search(r"```text\n(.*?)```", section.group(1), re.S)
    if not block:
        raise ValueError("docs/runtime.md's Folders section has no ```text block of layers")
    rows = [[name.strip() for name in line.split(",") if name.strip()] for line in block.group(1).splitlines() if line.strip()]
    return list(reversed(rows))


def code_only(source):
    """`source` with comments and the text of string literals blanked out (string
    interpolations kept, since they are code); line breaks are kept."""
    out = []
    i, n = 0, len(source)
    # A stack of contexts: ("code", paren depth) inside an interpolation, or ("string", closing
    # delimiter, raw hashes) inside a literal.
    stack = [("code", 0)]
    while i < n:
        top = stack[-1]
        if top[0] == "code":
            if source.startswith("//", i):
                end = source.find("\n", i)
                i = n if end < 0 else end
            elif source.startswith("/*", i):
                depth, i = 1, i + 2
                while i < n and depth:
                    if source.startswith("/*", i):
                        depth, i = depth + 1, i + 2
                    elif source.startswith("*/", i):
                        depth, i = depth - 1, i + 2
                    else:
                        out.append("\n" if source[i] == "\n" else "")
                        i += 1
            else:
                match = STRING_START.match(source, i)
                if match:
                    hashes, quote = match.group(1), match.group(2)
                    stack.append(("string", quote + hashes, hashes))
                    out.append(" ")
                    i = match.end()
                elif source[i] == "(" and len(stack) > 1:
                    stack[-1] = ("code", top[1] + 1)
                    out.append("(")
                    i += 1
                elif source[i] == ")" and len(stack) > 1:
                    if top[1] == 0:
                        stack.pop()  # the end of an interpolation: back into the string
                        out.append(" ")
                    else:
                        stack[-1] = ("code", top[1] - 1)
                        out.append(")")
                    i += 1
                else:
                    out.append(source[i])
                    i += 1
        else:
            _, closing, hashes = top
            if source.startswith(closing, i):
                stack.pop()
                out.append(" ")
                i += len(closing)
            elif source.startswith("\\" + hashes + "(", i):
                stack.append(("code", 0))
                out.append(" ")
                i += len(hashes) + 2
            elif source.startswith("\\" + hashes, i) and hashes == "":
                i += 2  # an escape such as \" or \\
            else:
                out.append("\n" if source[i] == "\n" else "")
                i += 1
    if len(stack) != 1:
        raise ValueError("a string literal or interpolation does not end")
    return "".join(out)


def read_folders(root=ROOT):
    """{folder: {file name: code}} for every folder of Sources/PicoRuntime."""
    base = os.path.join(root, RUNTIME)
    folders = {}
    for folder in sorted(os.listdir(base)):
        path = os.path.join(base, folder)
        if not os.path.isdir(path):
            continue
        folders[folder] = {}
        for name in sorted(os.listdir(path)):
            if name.endswith(".swift"):
                with open(os.path.join(path, name)) as handle:
                    folders[folder][name] = code_only(handle.read())
    return folders


def violations(root=ROOT):
    """One line per use of a name declared in a folder that is not in a lower layer, plus one
    per folder missing from (or listed in) the layers without existing."""
    order = layers(root)
    rank = {folder: index for index, row in enumerate(order) for folder in row}
    folders = read_folders(root)
    problems = [f"{RUNTIME}/{folder} is not in docs/runtime.md's layers" for folder in folders if folder not in rank]
    problems += [f"docs/runtime.md's layers list {folder}, which is not a folder of {RUNTIME}" for folder in rank if folder not in folders]
    types, members = {}, {}  # name -> (folder, file)
    for folder, files in folders.items():
        for name, code in files.items():
            for declared in DECLARATION.findall(code):
                types.setdefault(declared, (folder, name))
    for folder, files in folders.items():
        for name, code in files.items():
            for extended, body in EXTENSION.findall(code):
                if extended.split(".")[0] not in types:  # a type from outside PicoRuntime
                    for member in MEMBER.findall(body):
                        members.setdefault(member, (folder, name))
    for folder, files in folders.items():
        for name, code in files.items():
            seen = set()
            for dot, word in IDENTIFIER.findall(code):
                home = members.get(word) if dot else types.get(word)
                if home is None or home[0] == folder or (word, home) in seen:
                    continue
                seen.add((word, home))
                used = rank.get(home[0])
                user = rank.get(folder)
                if used is None or user is None or used < user:
                    continue
                relation = "a peer of" if used == user else "below"
                problems.append(f"{RUNTIME}/{folder}/{name} uses {'.' if dot else ''}{word} "
                                f"(declared in {home[0]}/{home[1]}), but {folder} is {relation} {home[0]}")
    return problems


if __name__ == "__main__":
    found = violations()
    for line in found:
        print(line)
    sys.exit(1 if found else 0)
