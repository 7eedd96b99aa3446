"""SCons tool `initramfs`: env.Initramfs(target, [init_binary], KERNEL=..., INITRAMFS_MODULES=True).

Builds a reproducible newc cpio with wslx.image.initramfs.build_initramfs.
KERNEL: kernel image whose modules (from /lib/modules/<kver>) are shipped;
empty means the newest Debian cloud kernel.  The emitter makes the target
depend on the builder's own Python sources, busybox, the kernel and its
modules.dep, so any of them changing rebuilds the archive.
"""
import os
import sys

import SCons.Action
import SCons.Builder


def _wslx_path(env):
    p = env.Dir("#host/python").abspath
    if p not in sys.path:
        sys.path.insert(0, p)


def _kernel(env):
    k = env.subst("$KERNEL") if env.get("KERNEL") else ""
    if k:
        return env.File(k).abspath
    from wslx.image.initramfs import find_default_kernel, InitramfsError
    try:
        return str(find_default_kernel())
    except InitramfsError:
        return ""


def _emitter(target, source, env):
    _wslx_path(env)
    from wslx.image import initramfs as ir

    deps = [env.File(str(p)) for p in ir.builder_sources()]
    if os.path.exists(str(ir.DEFAULT_BUSYBOX)):
        deps.append(env.File(str(ir.DEFAULT_BUSYBOX)))
    if env.get("INITRAMFS_MODULES", True):
        k = _kernel(env)
        if k:
            deps.append(env.File(k))
            mdir = ir.modules_dir_for(k)
            if mdir is not None:
                deps.append(env.File(str(mdir / "modules.dep")))
    for t in target:
        env.Depends(t, deps)
    return target, source


def _action(target, source, env):
    _wslx_path(env)
    from wslx.image.initramfs import build_initramfs

    info = []
    modules = bool(env.get("INITRAMFS_MODULES", True))
    k = _kernel(env) if modules else ""
    build_initramfs(target[0].abspath, source[0].abspath, kernel=k or None,
                    modules=modules and bool(k), mtime=int(env["INITRAMFS_MTIME"]), info=info)
    i = info[0]
    n = len(i.modules.order) if i.modules else 0
    print(f"initramfs: {target[0]} {i.size} bytes, {i.entries} entries, {n} modules, {i.seconds:.2f} s")
    if i.modules and i.modules.missing:
        print(f"initramfs: warning: kernel {i.modules.kver} lacks module roots {', '.join(i.modules.missing)}")
    return 0


def _strfunc(target, source, env):
    return f"Initramfs {target[0]} <- {source[0]}"


def generate(env):
    env.SetDefault(INITRAMFS_MODULES=True,
                   INITRAMFS_MTIME=os.environ.get("SOURCE_DATE_EPOCH", "").strip() or "0")
    action = SCons.Action.Action(_action, _strfunc,
                                 varlist=["KERNEL", "INITRAMFS_MODULES", "INITRAMFS_MTIME"])
    env["BUILDERS"]["Initramfs"] = SCons.Builder.Builder(action=action, emitter=_emitter,
                                                         single_source=True)


def exists(env):
    return True
