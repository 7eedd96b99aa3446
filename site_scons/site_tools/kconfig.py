"""SCons tool: Linux config fragments from kernel-config/ and kernels built from them.

Builders:
  env.KconfigFragment(profile)            -> $IMAGES_DIR/<profile>.config
  env.LinuxKernel(target, fragment_node)  -> bzImage (validated, cached in build/kernel-cache)
Helpers:
  env.KconfigProfiles()                   -> profile names declared in kernel-config/profiles.py

Both builders depend on the generator's own Python sources (kernel-config/*.py
and host/python/wslx/kconfig/*.py) through their emitters, so editing a
declaration or the generator regenerates fragments (content signatures keep
unchanged fragments from rebuilding kernels).
"""
import SCons.Action
import SCons.Builder


def _generator_sources(env):
    from wslx.kconfig.declarations import declaration_sources
    return [env.File(str(p)) for p in declaration_sources()]


def _fragment_emitter(target, source, env):
    # source[0] is a Value(profile name): its content is the profile, so the action knows what to write.
    return target, source + _generator_sources(env)


def _write_fragment(target, source, env):
    from wslx.kconfig.declarations import resolve_profile
    from wslx.kconfig.errors import KconfigError
    from wslx.kconfig.fragment import write_profile_fragment
    try:
        write_profile_fragment(resolve_profile(source[0].read()), target[0].abspath)
    except KconfigError as exc:
        print(f"kconfig: error: {exc}")
        return 1
    return 0


def _fragment_str(target, source, env):
    return f"KconfigFragment {target[0]} (profile {source[0].read()})"


def _kernel_emitter(target, source, env):
    from wslx.kconfig.source import source_identity
    # The source identity (tarball size/mtime or tree version) as a Value: switching KSOURCE rebuilds.
    # Cheap on purpose: emitters run on every scons invocation, even when the kernel is not a target.
    return target, source + _generator_sources(env) + [env.Value(source_identity(env.get("KSOURCE") or None))]


def _build_kernel(target, source, env):
    from wslx.kconfig.build import build_fragment
    from wslx.kconfig.errors import KconfigError
    try:
        build_fragment(source[0].abspath, output=target[0].abspath, source=env.get("KSOURCE") or None)
    except KconfigError as exc:
        print(f"kconfig: error: {exc}")
        return 1
    return 0


def _kernel_str(target, source, env):
    return f"LinuxKernel {target[0]} from {source[0]}"


def _profiles(env):
    from wslx.kconfig.declarations import profile_names
    return profile_names()


def _kconfig_fragment(env, profile, target=None):
    target = target or env.Dir("$IMAGES_DIR").File(f"{profile}.config")
    return env._KconfigFragment(target, env.Value(profile))


def exists(env):
    return True


def generate(env):
    env["BUILDERS"]["_KconfigFragment"] = SCons.Builder.Builder(
        action=SCons.Action.Action(_write_fragment, _fragment_str), emitter=_fragment_emitter)
    env["BUILDERS"]["LinuxKernel"] = SCons.Builder.Builder(
        action=SCons.Action.Action(_build_kernel, _kernel_str), emitter=_kernel_emitter, suffix=".bzImage")
    env.AddMethod(_kconfig_fragment, "KconfigFragment")
    env.AddMethod(_profiles, "KconfigProfiles")
