"""SCons tool: static, stripped programs built with musl-gcc.

    env.MuslProgram(target, sources)

builds `target` from C `sources` in a cloned environment with CC=musl-gcc
(override with MUSL_CC), -static -Os -Wall -Wextra -Werror -std=gnu11,
dead-code elimination, a stripped binary, and the generated AgentX headers
($GEN_DIR, default #build/gen) on the include path. Nodes in $MUSL_DEPENDS
(e.g. the `gen` nodes) are made prerequisites of every object, so the
generated header exists before anything compiles."""
import shutil

from SCons.Script import Flatten

CFLAGS = ['-std=gnu11', '-Os', '-Wall', '-Wextra', '-Werror', '-ffunction-sections', '-fdata-sections',
          '-fno-asynchronous-unwind-tables']
LINKFLAGS = ['-static', '-s', '-Wl,--gc-sections']


def musl_env(env):
    """A clone of env set up for static musl programs."""
    e = env.Clone()
    e.Replace(CC=env.get('MUSL_CC', 'musl-gcc'), LINK=env.get('MUSL_CC', 'musl-gcc'))
    e.Replace(CFLAGS=list(CFLAGS), CCFLAGS=[], CPPDEFINES=[], LINKFLAGS=list(LINKFLAGS), LIBS=[], LIBPATH=[])
    e.Replace(CPPPATH=[env.get('GEN_DIR', env.Dir('#build/gen'))])
    return e


def _musl_program(env, target, source, **kw):
    e = musl_env(env)
    objs = e.Object(Flatten(source))
    deps = Flatten([env.get('MUSL_DEPENDS', [])])
    if deps:
        e.Depends(objs, deps)
    return e.Program(target, objs, **kw)


def generate(env):
    env.SetDefault(MUSL_CC='musl-gcc')
    env.AddMethod(_musl_program, 'MuslProgram')
    env.AddMethod(musl_env, 'MuslEnvironment')


def exists(env):
    return shutil.which(env.get('MUSL_CC', 'musl-gcc')) is not None
