/* timer.c: the TSC, calibrated against PIT channel 2 (a fixed 1.193182 MHz
 * clock on PCs and on QEMU/OpenVMM chipsets). The window is 1 ms: good
 * to ~0.2% under TCG, short against the boot budget. */
#include "drivers/i8254.h"
#include "kernel/timer.h"
#include "platform/platform.h"

#define CAL_MS 1
#define CAL_MAX_POLLS 2000000       /* bounds the wait if there is no PIT */
#define FALLBACK_HZ 1000000000ULL

static uint64_t tsc0, tsc_hz, mult, cal_ns;   /* ns = (tsc delta * mult) >> 32 */
static const char *source = "none";
static uint64_t (*clock_ns)(void);          /* a better clock once one is set (Hyper-V) */
static uint64_t clock_base;

static uint64_t pit_calibrate(void)
{
    uint64_t count = PIT_HZ * CAL_MS / 1000;
    uint8_t b = pio_in8(PORTB);
    pio_out8(PORTB, (uint8_t)((b & ~(PORTB_SPEAKER | PORTB_GATE2))));   /* gate low, speaker off */
    pio_out8(PIT_CMD, PIT_CMD_CH2_LOHI_MODE0);
    pio_out8(PIT_CH2, (uint8_t)count);
    pio_out8(PIT_CH2, (uint8_t)(count >> 8));
    pio_out8(PORTB, (uint8_t)((b & ~PORTB_SPEAKER) | PORTB_GATE2));      /* gate high: count */
    uint64_t t0 = cpu_rdtsc();
    for (long i = 0; i < CAL_MAX_POLLS; i++) {
        if (pio_in8(PORTB) & PORTB_OUT2) {    /* OUT2 rises at terminal count */
            uint64_t t1 = cpu_rdtsc();
            return (t1 - t0) * PIT_HZ / count;
        }
    }
    return 0;
}

void timer_init(void)
{
    tsc0 = cpu_rdtsc();
    tsc_hz = pit_calibrate();
    source = "PIT channel 2";
    if (tsc_hz < 1000000) {    /* no PIT (or an absurd answer): assume 1 GHz, say so */
        tsc_hz = FALLBACK_HZ;
        source = "fallback (no PIT)";
    }
    mult = (1000000000ULL << 32) / tsc_hz;
    cal_ns = timer_now_ns();
}

void timer_set_source(uint64_t (*now_ns)(void), const char *name)
{
    uint64_t now = timer_now_ns();
    clock_base = now_ns() - now;            /* continuous: the new source takes over at the current time */
    clock_ns = now_ns;
    source = name;
}

uint64_t timer_now_ns(void)
{
    if (clock_ns)
        return clock_ns() - clock_base;
    unsigned __int128 p = (unsigned __int128)(cpu_rdtsc() - tsc0) * mult;
    return (uint64_t)(p >> 32);
}

uint64_t timer_tsc_hz(void) { return tsc_hz; }
uint64_t timer_calibration_ns(void) { return cal_ns; }
const char *timer_source(void) { return source; }
