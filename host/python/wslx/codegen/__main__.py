"""python -m wslx.codegen {header|examples|markdown} OUT: write one generated AgentX file.
python -m wslx.codegen spec-header|spec-markdown SPEC_MODULE OUT: a struct spec's header or page
(e.g. `spec-markdown wslx.spec.portal docs/portal-layout.md`)."""
import sys
from pathlib import Path

from . import c_header, c_structs, markdown

GENERATORS = {"header": c_header.generate, "examples": c_header.generate_examples, "markdown": markdown.generate}
SPEC_GENERATORS = {"spec-header": c_structs.generate_header, "spec-markdown": c_structs.generate_markdown}


def main(argv):
    if len(argv) == 3 and argv[1] in GENERATORS:
        Path(argv[2]).write_text(GENERATORS[argv[1]]())
        return 0
    if len(argv) == 4 and argv[1] in SPEC_GENERATORS:
        Path(argv[3]).write_text(SPEC_GENERATORS[argv[1]](c_structs.load_spec(argv[2])))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
