"""Print a pip requirements file, with --hash lines, for the wheels in a folder.

Used to refresh the lock files here: `pip download` the wanted versions into a
folder, then `python scripts/lock/hashes.py FOLDER > scripts/lock/NAME.txt`.
Several files of one project (one per Python version) become one entry with
every hash, so one lock can serve several interpreters.
"""
import collections
import hashlib
import pathlib
import re
import sys


def main(folder: str) -> None:
    hashes = collections.defaultdict(set)
    versions = collections.defaultdict(set)
    for path in sorted(pathlib.Path(folder).glob("*.whl")):
        name, version = path.name.split("-")[:2]
        name = re.sub(r"[-_.]+", "-", name).lower()
        versions[name].add(version)
        hashes[name].add(hashlib.sha256(path.read_bytes()).hexdigest())
    for name in sorted(hashes):
        if len(versions[name]) != 1:
            sys.exit(f"{name}: several versions {sorted(versions[name])}; lock them apart")
        lines = [f"{name}=={versions[name].pop()}"]
        lines += [f"    --hash=sha256:{h}" for h in sorted(hashes[name])]
        print(" \\\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1])
