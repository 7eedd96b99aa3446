/* hvbench.h: the hypervisor-interface micro-benchmark (trackb.hvbench=N). */
#ifndef TRACKB_HVBENCH_H
#define TRACKB_HVBENCH_H

/* Time count (decimal) traps, fast hypercalls and stimer ticks; print one
 * "hvbench:" console line. Needs hv_boot to have succeeded. */
void hvbench_run(const char *count);

#endif
