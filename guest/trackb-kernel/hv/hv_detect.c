/* hv_detect.c: is this a Hyper-V partition we can use? (TLFS 2.4, "Feature
 * discovery"; Linux arch/x86/kernel/cpu/mshyperv.c). Decide on the interface
 * signature "Hv#1", not on the vendor string; then the privileges the kit
 * needs: the hypercall and guest-OS-id MSRs, SynIC, and posting messages and
 * signalling events. */
#include "hv/hv.h"
#include "platform/platform.h"

#define CPUID_FEATURES 1u
#define HV_NEEDED_EAX (HV_FEATURE_EAX_HYPERCALL | HV_FEATURE_EAX_SYNIC)
#define HV_NEEDED_EBX (HV_FEATURE_EBX_POST_MESSAGES | HV_FEATURE_EBX_SIGNAL_EVENTS)

int hv_detect(struct hv_caps *c)
{
    uint32_t r[4];
    *c = (struct hv_caps){0};
    hv_cpuid(CPUID_FEATURES, r);
    if (!(r[2] & HV_CPUID_FEATURES_ECX_HYPERVISOR))           /* 1. a hypervisor at all */
        return 0;
    hv_cpuid(HV_CPUID_VENDOR_AND_MAX_FUNCTIONS, r);           /* 2. its leaves */
    c->max_leaf = r[0];
    if (c->max_leaf < HV_CPUID_ENLIGHTENMENT_INFO || c->max_leaf > HV_CPUID_VENDOR_AND_MAX_FUNCTIONS + 0xFF)
        return 0;
    hv_cpuid(HV_CPUID_INTERFACE, r);                          /* 3. the Hyper-V interface */
    if (r[0] != HV_INTERFACE_SIGNATURE)
        return 0;
    hv_cpuid(HV_CPUID_FEATURES, r);                           /* 4. privileges and features */
    c->features_eax = r[0], c->features_ebx = r[1], c->features_edx = r[3];
    hv_cpuid(HV_CPUID_ENLIGHTENMENT_INFO, r);                 /* 5. recommendations */
    c->hints_eax = r[0];
    c->present = (c->features_eax & HV_NEEDED_EAX) == HV_NEEDED_EAX &&
                 (c->features_ebx & HV_NEEDED_EBX) == HV_NEEDED_EBX;
    return c->present;
}
