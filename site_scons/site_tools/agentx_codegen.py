"""SCons tool: AgentX generated files (C headers, Markdown reference).

Builder AgentXGen(target, GENERATOR='header'|'examples'|'markdown'|'cffi'|'capi'). The
emitter makes every target depend on the spec and the generator's own Python
sources, so editing either regenerates; SCons' content signatures make an
unchanged regeneration a no-op."""
import sys

from SCons.Script import Builder, Glob


def _emitter(target, source, env):
    deps = Glob("#host/python/wslx/spec/*.py") + Glob("#host/python/wslx/codegen/*.py") + [
        env.File("#host/python/wslx/agentx/codec.py"), env.File("#host/python/wslx/agentx/errors.py")]
    return target, source + deps


def _action(target, source, env):
    from wslx.codegen import c_header, c_host_capi, c_host_codec, markdown
    gen = {"header": c_header.generate, "examples": c_header.generate_examples, "markdown": markdown.generate,
           "cffi": c_host_codec.generate_cffi_module, "capi": c_host_capi.generate_source}
    with open(str(target[0]), "w") as f:
        f.write(gen[env["GENERATOR"]]())
    return 0


def _strfunction(target, source, env):
    return f"[gen] {target[0]} (AgentX {env['GENERATOR']})"


def generate(env):
    # The generators import wslx from the checkout, never from whatever is installed.
    root = env.Dir("#host/python").abspath
    if root not in sys.path:
        sys.path.insert(0, root)
    env.Append(BUILDERS={"AgentXGen": Builder(action=env.Action(_action, _strfunction), emitter=_emitter)})


def exists(env):
    return True
