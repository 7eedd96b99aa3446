"""python -m wslx.codegen {header|examples|markdown} OUT: write one generated file."""
import sys
from pathlib import Path

from . import c_header, markdown

GENERATORS = {"header": c_header.generate, "examples": c_header.generate_examples, "markdown": markdown.generate}


def main(argv):
    if len(argv) != 3 or argv[1] not in GENERATORS:
        print(__doc__, file=sys.stderr)
        return 2
    Path(argv[2]).write_text(GENERATORS[argv[1]]())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
