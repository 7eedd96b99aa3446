"""SCons tool: the Track B freestanding x86-64 kernel.

    env.TrackBKernel(target, sources, LDSCRIPT='kernel.ld', IMAGE_BUDGET=512 * 1024)

compiles C and preprocessed assembly (.S) (object files among the sources, e.g. from
env.TrackBEnvironment() with other flags, are linked as they are) in a cloned environment with
freestanding flags (no libc, no red zone, no SSE, no PIC, -mcmodel=small:
the kernel is linked at 1 MiB, identity mapped), links with the linker
script, then runs wslx.image.elfcheck on the result in the same build step:
a failed check deletes the image and fails the build with the problems
listed. The generated headers ($GEN_DIR) are on the include path and the
nodes in $TRACKB_DEPENDS (the gen nodes) are prerequisites of every object."""
import os
import shutil
import sys

from SCons.Script import Action, Flatten

CFLAGS = ['-std=gnu11', '-O2', '-g', '-Wall', '-Wextra', '-Werror',
          '-ffreestanding', '-fno-builtin', '-nostdlib', '-fno-pic', '-fno-pie', '-fno-stack-protector',
          '-mno-red-zone', '-mcmodel=small', '-mgeneral-regs-only', '-mno-sse', '-mno-mmx', '-mno-avx',
          '-fno-asynchronous-unwind-tables', '-fno-tree-loop-distribute-patterns',  # no memcpy-in-memcpy
          '-ffunction-sections', '-fdata-sections']
ASFLAGS = ['-Wa,--noexecstack']
LINKFLAGS = ['-nostdlib', '-static', '-no-pie', '-Wl,--gc-sections', '-Wl,-z,max-page-size=4096',
             '-Wl,--build-id=none', '-Wl,-z,noexecstack']


def trackb_env(env):
    """A clone of env set up for freestanding kernel objects."""
    e = env.Clone()
    cc = env.get('TRACKB_CC', 'gcc')
    e.Replace(CC=cc, LINK=cc, AS=cc)
    e.Replace(CFLAGS=list(CFLAGS), CCFLAGS=[], CPPDEFINES=[], ASFLAGS=list(ASFLAGS), ASPPFLAGS=list(ASFLAGS),
              LINKFLAGS=list(LINKFLAGS), LIBS=[], LIBPATH=[])
    e.Replace(CPPPATH=[env.get('GEN_DIR', env.Dir('#build/gen')), env.Dir('#guest/trackb-kernel')])
    return e


def _elfcheck(target, source, env):
    from wslx.image import elfcheck
    path = str(target[0])
    try:
        report = elfcheck.check_kernel(path, budget=int(env['IMAGE_BUDGET']))
    except elfcheck.ElfCheckError as e:
        print(f"elfcheck FAILED for {path}:", file=sys.stderr)
        for p in e.problems:
            print(f"  - {p}", file=sys.stderr)
        os.unlink(path)     # never leave an image that failed its checks
        return 1
    print(f"[elfcheck] {report.summary()}")
    return 0


def _trackb_kernel(env, target, source, LDSCRIPT='kernel.ld', IMAGE_BUDGET=512 * 1024, **kw):
    e = trackb_env(env)
    suffix = e.subst('$OBJSUFFIX')   # objects built elsewhere (other flags) are linked as they are
    srcs = Flatten(source)
    objs = e.Object([s for s in srcs if not str(s).endswith(suffix)]) + [s for s in srcs if str(s).endswith(suffix)]
    deps = Flatten([env.get('TRACKB_DEPENDS', [])])
    if deps:
        e.Depends(objs, deps)
    ld = e.File(LDSCRIPT)
    prog = e.Program(target, objs, LINKFLAGS=e['LINKFLAGS'] + ['-Wl,-T,' + ld.srcnode().abspath],
                     IMAGE_BUDGET=IMAGE_BUDGET, **kw)
    e.Depends(prog, [ld, e.File('#host/python/wslx/image/elfcheck.py')])
    e.AddPostAction(prog, Action(_elfcheck, lambda t, s, env: None))  # _elfcheck prints its summary
    return prog


def generate(env):
    root = env.Dir('#host/python').abspath
    if root not in sys.path:  # elfcheck imports wslx from the checkout
        sys.path.insert(0, root)
    env.SetDefault(TRACKB_CC='gcc')
    env.AddMethod(_trackb_kernel, 'TrackBKernel')
    env.AddMethod(trackb_env, 'TrackBEnvironment')


def exists(env):
    return shutil.which(env.get('TRACKB_CC', 'gcc')) is not None
