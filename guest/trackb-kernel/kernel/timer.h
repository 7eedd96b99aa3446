/* timer.h: calibrated TSC clock. */
#ifndef TRACKB_TIMER_H
#define TRACKB_TIMER_H

#include <stdint.h>

void timer_init(void);          /* calibrate the TSC against PIT channel 2 */
uint64_t timer_now_ns(void);    /* since timer_init() */
uint64_t timer_tsc_hz(void);
uint64_t timer_calibration_ns(void);   /* how long calibration took */
const char *timer_source(void);
/* From now on timer_now_ns() follows now_ns (e.g. the Hyper-V reference
 * clock), continuing from the current value. */
void timer_set_source(uint64_t (*now_ns)(void), const char *name);

#endif
