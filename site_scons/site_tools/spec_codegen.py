"""SCons tool: C headers and Markdown generated from construct struct specs.

    env.SpecHeader('portal_layout.h', SPEC='wslx.spec.portal')
    env.SpecHeader('portal-layout.md', SPEC='wslx.spec.portal', GENERATOR='markdown')

SPEC names a module under host/python/wslx/spec that defines
C_HEADER = HeaderSpec(...) (see wslx.codegen.c_structs). The emitter makes the
target depend on every spec module and on the generator's own sources, so
editing either regenerates; content signatures make a no-op regeneration free."""
import sys

from SCons.Script import Builder, Glob


def _emitter(target, source, env):
    deps = Glob("#host/python/wslx/spec/*.py") + Glob("#host/python/wslx/codegen/*.py")
    return target, source + deps


def _action(target, source, env):
    from wslx.codegen import c_structs
    spec = c_structs.load_spec(env["SPEC"])
    render = {"header": c_structs.generate_header, "markdown": c_structs.generate_markdown}[env["GENERATOR"]]
    with open(str(target[0]), "w") as f:
        f.write(render(spec))
    return 0


def _strfunction(target, source, env):
    return f"[gen] {target[0]} ({env['SPEC']} {env['GENERATOR']})"


def generate(env):
    root = env.Dir("#host/python").abspath
    if root not in sys.path:  # the generators import wslx from the checkout
        sys.path.insert(0, root)
    env.SetDefault(GENERATOR="header")
    env.Append(BUILDERS={"SpecHeader": Builder(action=env.Action(_action, _strfunction), emitter=_emitter,
                                               varlist=["SPEC", "GENERATOR"])})


def exists(env):
    return True
