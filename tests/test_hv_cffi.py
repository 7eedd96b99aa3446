"""The model's interface holds for C: guest code compiled for the host reaches the partition through plain
function pointers (cffi callbacks), with guest RAM the model's own buffer (the shape issue 13 builds on).

The C side below uses only build/gen/hyperv.h: it detects Hv#1, sets the OS id, enables the hypercall page
and checks its bytes in the shared RAM, makes a memory-form HvCallGetPartitionId whose output it reads from
RAM, and turns a #GP raised by the model into a fault code."""
from __future__ import annotations

import subprocess

import cffi
import pytest

from wslx.hv import GuestFault, GuestMemory, Partition

C_SOURCE = r"""
#include <stdint.h>
#include <string.h>
#include "hyperv.h"

struct hv_platform {                 /* what Track B's platform layer provides, as callbacks */
    uint8_t *ram;                    /* guest RAM: GPA = offset */
    void (*cpuid)(uint32_t leaf, uint32_t out[4]);
    uint64_t (*rdmsr)(uint32_t msr, int *fault);
    int (*wrmsr)(uint32_t msr, uint64_t value);      /* 0 or the exception vector */
    uint64_t (*hypercall)(uint64_t control, uint64_t in, uint64_t out, int *fault);
};

int hv_probe(const struct hv_platform *p, uint64_t *partition_id)
{
    uint32_t r[4];
    int fault = 0;
    p->cpuid(HV_CPUID_INTERFACE, r);
    if (r[0] != HV_INTERFACE_SIGNATURE)
        return -1;
    if (p->wrmsr(HV_MSR_GUEST_OS_ID, HV_GUEST_OS_ID_OPEN_SOURCE | 1))
        return -2;
    if (p->wrmsr(HV_MSR_HYPERCALL, 0x3000 | HV_PAGE_MSR_ENABLE))
        return -3;
    if (!(p->rdmsr(HV_MSR_HYPERCALL, &fault) & HV_PAGE_MSR_ENABLE) || fault)
        return -4;
    if (memcmp(p->ram + 0x3000, "\x0f\x01\xc1\xc3", 4) != 0)   /* vmcall; ret, written by the model */
        return -5;
    uint64_t rax = p->hypercall(HVCALL_GET_PARTITION_ID, 0, 0x4000, &fault);
    if (fault || (rax & HV_RESULT_STATUS_MASK) != HV_STATUS_SUCCESS)
        return -6;
    memcpy(partition_id, p->ram + 0x4000, 8);
    return p->wrmsr(0x400000FF, 1);                           /* unknown synthetic MSR: #GP (13) */
}
"""


@pytest.fixture(scope="module")
def probe_lib(generated, tmp_path_factory):
    d = tmp_path_factory.mktemp("hv-cffi")
    (d / "probe.c").write_text(C_SOURCE)
    so = d / "probe.so"
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Werror", "-shared", "-fPIC", f"-I{generated}", str(d / "probe.c"),
                    "-o", str(so)], check=True)
    ffi = cffi.FFI()
    ffi.cdef("""
        struct hv_platform { uint8_t *ram; void (*cpuid)(uint32_t, uint32_t[4]);
                             uint64_t (*rdmsr)(uint32_t, int *); int (*wrmsr)(uint32_t, uint64_t);
                             uint64_t (*hypercall)(uint64_t, uint64_t, uint64_t, int *); };
        int hv_probe(const struct hv_platform *p, uint64_t *partition_id);
    """)
    return ffi, ffi.dlopen(str(so))


@pytest.mark.parametrize("profile,expected", [("hyperv", 13), ("openvmm-kvm", -6)])
def test_c_guest_code_drives_the_model_through_callbacks(probe_lib, profile, expected):
    ffi, lib = probe_lib
    ram = bytearray(1 << 20)
    hv = Partition(GuestMemory(ram), profile)

    @ffi.callback("void(uint32_t, uint32_t[4])")
    def cpuid(leaf, out):
        for i, v in enumerate(hv.cpuid(leaf)):
            out[i] = v

    @ffi.callback("uint64_t(uint32_t, int *)")
    def rdmsr(msr, fault):
        try:
            return hv.rdmsr(msr)
        except GuestFault as e:
            fault[0] = e.vector
            return 0

    @ffi.callback("int(uint32_t, uint64_t)")
    def wrmsr(msr, value):
        try:
            hv.wrmsr(msr, value)
            return 0
        except GuestFault as e:
            return e.vector

    @ffi.callback("uint64_t(uint64_t, uint64_t, uint64_t, int *)")
    def hypercall(control, rdx, r8, fault):
        try:
            return hv.hypercall(control, rdx, r8)
        except GuestFault as e:
            fault[0] = e.vector
            return 0

    platform = ffi.new("struct hv_platform *", dict(ram=ffi.from_buffer("uint8_t[]", ram), cpuid=cpuid,
                                                    rdmsr=rdmsr, wrmsr=wrmsr, hypercall=hypercall))
    pid = ffi.new("uint64_t *")
    # hyperv: every step passes and the unknown MSR #GPs (13); openvmm-kvm: no GetPartitionId privilege (-6)
    assert lib.hv_probe(platform, pid) == expected
    if profile == "hyperv":
        assert pid[0] == hv.profile.partition_id
